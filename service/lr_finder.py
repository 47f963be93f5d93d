"""``POST /lr-finder``: Smith's learning-rate range test on what a job spec would train on.

The body is a job spec (validated exactly like ``POST /jobs``: its dataset resolved for
the tenant, the same limits) plus the range. The run is built as the worker builds it
(``service.build.prepare``: the same network and seed, the same validation split and
standardization), and the engine's ``lr_range_test`` sees only the training split.

It trains synchronously in the API process, so it is bounded (413 naming the limit):
``lr_finder_steps`` (steps), ``lr_finder_values`` (examples × features the dataset loads)
and ``lr_finder_work`` (steps × examples per step × parameters: the multiply-adds of the
forward passes, a third of the work). Kernel code: no Flask, no Celery.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy.orm import Session

from service import datasets, deadlines, generators
from service.build import prepare
from service.config import Limits
from service.problems import Invalid, PayloadTooLarge
from service.schemas.insight import LrFinderRequest
from service.schemas.spec import parameter_count
from service.validation import validate_spec
from worker.nn.errors import SpecError
from worker.nn.lr_finder import lr_range_test


def range_test(
    session: Session, tenant_id: str, body: LrFinderRequest, limits: Limits
) -> dict[str, Any]:
    """The body of the answer: the engine's result, the examples and batch size used."""
    if not body.min_lr < body.max_lr:
        raise Invalid.at(["body", "max_lr"], f"max_lr must be above min_lr ({body.min_lr:g})")
    _within(body.steps, limits.lr_finder_steps, "lr_finder_steps", ["body", "steps"], "steps")
    canonical, dataset_id, _work = validate_spec(session, tenant_id, body.spec(), limits)
    spec = canonical["dataset"]
    loc: list[str | int] = ["body", "dataset"]
    if dataset_id is not None:
        row = datasets.get_dataset(session, tenant_id, dataset_id)
        n_samples, n_features = row.n_samples, row.n_features
    else:
        n_samples, n_features = _size(spec)
    values = n_samples * n_features
    _within(values, limits.lr_finder_values, "lr_finder_values", loc, "examples × features")
    if dataset_id is not None:
        data = datasets.stored_arrays(session, tenant_id, dataset_id)
    else:
        data = datasets.spec_arrays(spec, limits, loc)
    run = prepare(canonical, data)
    trainer = run.trainer
    work = body.steps * trainer.batch_size * parameter_count(run.net.layer_sizes)
    what = "steps × examples per step × parameters"
    _within(work, limits.lr_finder_work, "lr_finder_work", ["body"], what)
    try:
        result = lr_range_test(
            run.net,
            trainer.X_train,
            trainer.Y_train,
            trainer.config,
            min_lr=body.min_lr,
            max_lr=body.max_lr,
            steps=body.steps,
            tick=deadlines.checker("in the learning-rate finder"),
        )
    except SpecError as exc:
        raise Invalid.at(["body"], str(exc)) from None
    result["examples"] = int(trainer.X_train.shape[0])
    result["batch_size"] = int(trainer.batch_size)
    return result


def _size(spec: dict[str, Any]) -> tuple[int, int]:
    """(examples, features) of a generated or inline dataset spec, before building it."""
    if "generator" in spec:
        return int(spec["n_samples"]), generators.describe(spec)[1]
    X = spec["X"]
    return len(X), len(X[0]) if X else 0


def _within(value: int, limit: int, name: str, loc: list[str | int], what: str) -> None:
    if value > limit:
        raise PayloadTooLarge(
            f"{what} = {value} exceeds the {name} limit of {limit}",
            errors=[(loc, f"at most {limit} ({name})")],
        )
