"""Every name is declared once (``service.schemas.names``) and equals what uses it:
the engine's registries, the generators, the spec unions and the database enums."""

from __future__ import annotations

import typing

from service import generators
from service.schedulers import SCHEDULERS
from service.schemas import names
from service.schemas.spec import UNION_TAGS, GeneratorSpec
from worker.nn import ACTIVATIONS, INITIALIZERS, LOSSES, OPTIMIZERS, SCHEDULES
from worker.nn.activations import HIDDEN_ACTIVATIONS


def literal(name) -> set[str]:
    return set(typing.get_args(name))


def test_names_equal_the_engine_registries():
    assert literal(names.OutputActivation) == set(ACTIVATIONS)
    assert literal(names.HiddenActivation) == set(HIDDEN_ACTIVATIONS)
    assert literal(names.LossName) == set(LOSSES)
    assert literal(names.InitSchemeName) == set(INITIALIZERS)
    assert literal(names.OptimizerName) == set(OPTIMIZERS)
    assert set(names.SCHEDULES) == set(SCHEDULES)


def test_generator_names_equal_the_spec_models_and_the_generators():
    union = typing.get_args(typing.get_args(GeneratorSpec)[0])
    tags = {typing.get_args(model.model_fields["generator"].annotation)[0] for model in union}
    assert tags == set(names.GENERATORS)
    assert set(generators.GENERATORS) == set(names.GENERATORS)
    assert set(names.GENERATORS) <= UNION_TAGS
    assert set(names.SCHEDULES) <= UNION_TAGS


def test_statuses_and_queues_are_the_enums():
    assert literal(names.StatusName) == {s.value for s in names.JobStatus}
    assert names.FINISHED | names.UNFINISHED == set(names.JobStatus)
    assert not names.FINISHED & names.UNFINISHED
    assert {q.value for q in names.Queue} == {"interactive", "batch"}


def test_every_scheduler_name_has_a_scheduler():
    assert set(SCHEDULERS) == literal(names.SchedulerName)


def test_finding_codes_and_severities_are_the_engines():
    from worker.nn.diagnostics import CODES, SEVERITY_ORDER

    assert typing.get_args(names.FindingCode) == CODES
    assert literal(names.Severity) == set(SEVERITY_ORDER)
