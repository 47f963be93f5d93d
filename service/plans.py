"""Planning a batch: a request's shape checked and expanded into (unvalidated) job specs.

Kernel code, pure but for the seeds it chooses. A grid or random sweep expands at once
(``service.sweeps``); a TPE search plans its first trials (``service.searches``); an explicit
list is taken as given. Each job gets its ``origin``; the scheduler is recorded with its
mode resolved and its seed chosen. ``service.batches`` validates and stores the plan.
"""

from __future__ import annotations

import secrets
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from service import searches, summaries
from service.config import Limits, limit_env
from service.problems import Invalid
from service.schedulers.pbt import INHERITED
from service.schemas.batch import BatchSubmit
from service.schemas.names import BATCH_KINDS
from service.schemas.spec import JobSpec
from service.sweeps import Expanded, SweepError, apply_params, expand_grid, expand_random, sampler
from service.validation import parse_spec


@dataclass(frozen=True)
class Plan:
    """A batch request expanded into specs, before validation."""

    kind: str
    record: dict[str, Any]  # what ``batches.spec`` stores (the seed is always recorded)
    varied: list[str]
    expanded: list[Expanded]
    names: list[str | None]
    origins: list[dict[str, Any]] = field(default_factory=list)  # ``jobs.origin``, in order


def plan_batch(request: BatchSubmit, limits: Limits) -> Plan:
    """Check the request's shape and expand it; raises ``Invalid`` naming the field."""
    plan = _plan(request, limits)
    _check_inline_values(plan, request, limits)
    return plan


def _inline_values(spec: Any) -> int:
    """Values of an inline dataset in a job spec (X and y), 0 for a stored or generated one."""
    dataset = spec.get("dataset") if isinstance(spec, dict) else None
    X = dataset.get("X") if isinstance(dataset, dict) else None
    if not isinstance(X, list) or not X:
        return 0
    width = len(X[0]) if isinstance(X[0], list) else 1
    return len(X) * (width + 1)


def _check_inline_values(plan: Plan, request: BatchSubmit, limits: Limits) -> None:
    """Each job of a batch stores its spec, inline data included: the batch's total is
    bounded (issue 11), so a 1000-job sweep over inline data cannot write 1000 copies."""
    if plan.kind == "tpe" and request.search is not None:
        total = _inline_values(request.base) * request.search.trials
    else:
        total = sum(_inline_values(item.spec) for item in plan.expanded)
    if total > limits.batch_inline_values:
        raise Invalid.at(
            ["body"],
            f"the batch's jobs would store {total} inline values; at most "
            f"{limits.batch_inline_values} ({limit_env('batch_inline_values')}): upload the "
            "dataset (POST /datasets) and name it by id",
        )


def _plan(request: BatchSubmit, limits: Limits) -> Plan:
    given = [kind for kind in BATCH_KINDS if getattr(request, _FIELD.get(kind, kind)) is not None]
    if len(given) != 1:
        raise Invalid.at(["body"], "give exactly one of grid, random, search or jobs")
    kind = given[0]
    if kind != "random" and (request.samples is not None or request.seed is not None):
        raise Invalid.at(["body", "samples" if request.samples else "seed"], "only with random")
    try:
        if kind == "jobs":
            return _plan_jobs(request, limits)
        if kind == "tpe":
            return _with_scheduler(request, _plan_tpe(request, limits))
        if request.base is None:
            raise Invalid.at(["body", "base"], f"a {kind} sweep needs a base job spec")
        if kind == "grid":
            assert request.grid is not None
            expanded = expand_grid(request.base, request.grid, limits.batch_jobs)
            record: dict[str, Any] = {"kind": kind, "base": request.base, "grid": request.grid}
            varied = list(request.grid)
        else:
            assert request.random is not None
            if request.samples is None:
                raise Invalid.at(["body", "samples"], "a random sweep needs samples")
            seed = request.seed if request.seed is not None else secrets.randbelow(2**32)
            expanded = expand_random(
                request.base, request.random, request.samples, seed, limits.batch_jobs
            )
            record = {
                "kind": kind,
                "base": request.base,
                "random": request.random,
                "samples": request.samples,
                "seed": seed,
            }
            varied = list(request.random)
    except SweepError as err:
        raise Invalid.at(err.loc, err.msg) from None
    origins = [
        {"kind": "grid", "index": i} if kind == "grid"
        else {"kind": "random", "seed": record["seed"], "sample": i}
        for i in range(len(expanded))
    ]  # fmt: skip
    plan = Plan(kind, record, varied, expanded, [None] * len(expanded), origins)
    return _with_scheduler(request, plan)


# The request field of each batch kind.
_FIELD = {"tpe": "search"}


def _plan_tpe(request: BatchSubmit, limits: Limits) -> Plan:
    """The first trials of a TPE search (the rest come as trials finish: service.searches)."""
    search = request.search
    assert search is not None
    if request.base is None:
        raise Invalid.at(["body", "base"], "a tpe search needs a base job spec")
    if not search.space:
        raise Invalid.at(["body", "search", "space"], "give at least one dotted path")
    for path, dist in search.space.items():
        sampler(path, dist, "search.space")
        _check_extremes(request.base, path, dist)
    if search.trials > limits.batch_jobs:
        raise Invalid.at(["body", "search", "trials"], f"at most {limits.batch_jobs} trials")
    if search.max_concurrent > search.trials:
        raise Invalid.at(["body", "search", "max_concurrent"], "at most trials")
    config = search.model_dump()
    config["mode"] = summaries.check_metric(config["metric"], config["mode"])[1]
    if config["seed"] is None:
        config["seed"] = secrets.randbelow(2**32)
    record = {"kind": "tpe", "base": request.base, "search": config}
    first = searches.first_trials(config)
    expanded = [Expanded(apply_params(request.base, p, "search"), p) for p, _ in first]
    names: list[str | None] = [None] * len(first)
    return Plan("tpe", record, list(search.space), expanded, names, [o for _, o in first])


def _check_extremes(base: dict[str, Any], path: str, dist: dict[str, Any]) -> None:
    """Every choice and both ends of a range must make a valid spec: a later trial will not
    be refused for a value the space allows."""
    name, args = next(iter(dist.items()))
    for value in args if name == "choice" else args[:2]:
        try:
            parse_spec(apply_params(base, {path: value}, "search"))
        except Invalid as err:
            detail = f"{path}={value!r} makes an invalid job: {err.errors[0][1]}"
            raise Invalid.at(["body", "search", "space", path], detail) from None


def _with_scheduler(request: BatchSubmit, plan: Plan) -> Plan:
    """Record the scheduler (its mode resolved, its seed chosen) with the batch."""
    if request.scheduler is not None:
        config = request.scheduler.model_dump()
        config["mode"] = summaries.check_metric(config["metric"], config["mode"])[1]
        if "seed" in config and config["seed"] is None:
            config["seed"] = secrets.randbelow(2**32)
        check_scheduler(config, plan)
        plan.record["scheduler"] = config
    return plan


def check_scheduler(config: dict[str, Any], plan: Plan) -> None:
    loc = ["body", "scheduler"]
    if config["name"] == "hyperband" and config["min_epochs"] >= config["max_epochs"]:
        raise Invalid.at([*loc, "max_epochs"], "max_epochs must be above min_epochs")
    if config["name"] == "pbt":
        if plan.kind == "tpe":
            raise Invalid.at([*loc, "name"], "pbt changes trials' hyperparameters: not with tpe")
        if not any(p.startswith("training.") and p not in INHERITED for p in plan.varied):
            raise Invalid.at(
                [*loc, "name"], "pbt needs a varied training value to explore (a learning rate, …)"
            )


def _plan_jobs(request: BatchSubmit, limits: Limits) -> Plan:
    assert request.jobs is not None
    if request.base is not None:
        raise Invalid.at(["body", "base"], "base is for grid and random sweeps, not a jobs list")
    if not request.jobs:
        raise Invalid.at(["body", "jobs"], "give at least one job")
    if len(request.jobs) > limits.batch_jobs:
        raise Invalid.at(["body", "jobs"], f"at most {limits.batch_jobs} jobs in a batch")
    names: list[str | None] = []
    specs = []
    for index, item in enumerate(request.jobs):
        spec = dict(item)
        name = spec.pop("name", None)
        if name is not None and (not isinstance(name, str) or len(name) > 200):
            raise Invalid.at(["body", "jobs", index, "name"], "a string of at most 200 characters")
        names.append((name.strip() or None) if name else None)
        specs.append(spec)
    # Params are filled in after validation, from the canonical specs (see ``submit_batch``).
    expanded = [Expanded(spec) for spec in specs]
    origins = [{"kind": "jobs", "index": i} for i in range(len(specs))]
    plan = Plan("jobs", {"kind": "jobs", "size": len(specs)}, [], expanded, names, origins)
    return _with_scheduler(request, plan)


def check_scheduler_metric(plan: Plan, models: Sequence[JobSpec]) -> None:
    """A validation metric (a scheduler's or a search's) needs a validation split in every job."""
    for part in ("scheduler", "search"):
        config = plan.record.get(part)
        if not config or not config["metric"].startswith("val_"):
            continue
        for index, model in enumerate(models):
            if not model.dataset.validation_split > 0:
                raise Invalid.at(
                    ["body", part, "metric"],
                    f"{config['metric']} needs a validation_split in every job; "
                    f"job {index} has none",
                )
