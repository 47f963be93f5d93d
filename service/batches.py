"""Batch commands and queries: plan a sweep into jobs, submit it, read, summarise, cancel.

Kernel code (no Flask, no Celery). Functions take a session and raise ``service.problems``
errors. A batch and all its jobs are created in one transaction after every expanded spec
validated, so a bad combination stores nothing. The expansion itself is ``service.sweeps``,
the rankings ``service.summaries``, the curves ``service.curves`` and the early stopping
``service.schedulers``.
"""

from __future__ import annotations

import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, load_only

from service import idempotency, summaries
from service.config import Limits
from service.cursors import paginate
from service.dispatch import Sender, dispatch
from service.jobs import cancel_job, create_job, parse_spec
from service.models import Batch, Job
from service.problems import Conflict, Invalid, NotFound
from service.schemas import responses
from service.schemas.batch import BatchSubmit
from service.schemas.names import (
    BATCH_KINDS,
    UNFINISHED,
    Queue,
)
from service.schemas.spec import JobSpec
from service.sweeps import Expanded, SweepError, expand_grid, expand_random, varied_params

# --- creating -------------------------------------------------------------------------

# A rejected batch lists at most this many invalid jobs (the first ones, in batch order).
MAX_REPORTED_JOBS = 20


@dataclass(frozen=True)
class Plan:
    """A batch request expanded into specs, before validation."""

    kind: str
    record: dict[str, Any]  # what ``batches.spec`` stores (the seed is always recorded)
    varied: list[str]
    expanded: list[Expanded]
    names: list[str | None]


def plan_batch(request: BatchSubmit, limits: Limits) -> Plan:
    """Check the request's shape and expand it; raises ``Invalid`` naming the field."""
    given = [kind for kind in BATCH_KINDS if getattr(request, kind) is not None]
    if len(given) != 1:
        raise Invalid.at(["body"], "give exactly one of grid, random or jobs")
    kind = given[0]
    if kind != "random" and (request.samples is not None or request.seed is not None):
        raise Invalid.at(["body", "samples" if request.samples else "seed"], "only with random")
    try:
        if kind == "jobs":
            return _plan_jobs(request, limits)
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
    return _with_scheduler(request, Plan(kind, record, varied, expanded, [None] * len(expanded)))


def _with_scheduler(request: BatchSubmit, plan: Plan) -> Plan:
    """Record the scheduler (its mode resolved) with the batch."""
    if request.scheduler is not None:
        config = request.scheduler.model_dump()
        config["mode"] = summaries.check_metric(config["metric"], config["mode"])[1]
        plan.record["scheduler"] = config
    return plan


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
    plan = Plan("jobs", {"kind": "jobs", "size": len(specs)}, [], expanded, names)
    return _with_scheduler(request, plan)


def _invalid_job(plan: Plan, index: int, err: Invalid) -> list[tuple[list[Any], str]]:
    """Re-state a job's errors so they name the job (and, for sweeps, its combination)."""
    if plan.kind == "jobs":
        return [(loc, msg) for loc, msg in err.errors]
    combination = ", ".join(f"{p}={v!r}" for p, v in plan.expanded[index].params.items())
    return [(loc, f"job {index} ({combination}): {msg}") for loc, msg in err.errors]


def _job_loc(plan: Plan, index: int) -> tuple[str | int, ...]:
    return ("body", "jobs", index) if plan.kind == "jobs" else ("body", "base")


def submit_batch(
    session: Session,
    tenant_id: str,
    body: BatchSubmit,
    limits: Limits,
    idempotency_key: str | None = None,
    *,
    send: Sender | None = None,
) -> tuple[Batch, list[str], bool]:
    """Validate every expanded spec, then create the batch and its jobs, COMMIT, and
    dispatch the jobs to the ``batch`` queue with ``send`` (else the reaper sends them).

    Returns (batch, job ids in batch order, created). Nothing is stored if any job is
    invalid: the 422 lists the first invalid jobs with their locations. The
    Idempotency-Key behaves as for single jobs (repeat → the first batch, created False;
    another body → 422; concurrent repeats → one batch).
    """
    fingerprint = idempotency.fingerprint(body.model_dump(mode="json", exclude_none=True))
    if idempotency_key:
        existing = idempotency.find(session, Batch, tenant_id, idempotency_key)
        if existing is not None:
            return *_replay_batch(session, existing, fingerprint), False
    plan = plan_batch(body, limits)
    _check_inline_total(plan, limits)
    # Pass 1 (no database): the pydantic model of every spec, reporting every bad job.
    models: list[JobSpec] = []
    errors: list[tuple[list[Any], str]] = []
    bad_jobs = 0
    for index, item in enumerate(plan.expanded):
        try:
            models.append(parse_spec(item.spec, _job_loc(plan, index)))
        except Invalid as err:
            bad_jobs += 1
            if bad_jobs <= MAX_REPORTED_JOBS:
                errors.extend(_invalid_job(plan, index, err))
    if errors:
        raise _rejected(plan, bad_jobs, errors)
    _check_scheduler_metric(plan, models)
    params = [item.params for item in plan.expanded]
    varied = plan.varied
    if plan.kind == "jobs":
        params = varied_params([m.model_dump(mode="json") for m in models])
        varied = list(dict.fromkeys(p for ps in params for p in ps))
    # Pass 2: dataset-aware checks and inserts in one transaction; the first error rolls
    # everything back.
    batch = Batch(
        tenant_id=tenant_id,
        name=body.name,
        spec=plan.record,
        varied=varied,
        idempotency_key=idempotency_key,
        request_hash=fingerprint if idempotency_key else None,
    )
    job_ids = []
    try:
        session.add(batch)
        session.flush()
        for index, model in enumerate(models):
            try:
                job = create_job(
                    session,
                    tenant_id,
                    model,
                    name=plan.names[index] or f"{body.name} #{index}",
                    batch_id=batch.id,
                    queue=Queue.batch.value,
                    params=params[index],
                    limits=limits,
                    loc=_job_loc(plan, index),
                )
            except Invalid as err:
                raise _rejected(plan, 1, _invalid_job(plan, index, err)) from None
            job.batch_index = index
            job_ids.append(job.id)
        session.flush()
        session.commit()
    except IntegrityError:
        session.rollback()
        winner = (
            idempotency.find(session, Batch, tenant_id, idempotency_key)
            if idempotency_key
            else None
        )
        if winner is None:
            raise
        return *_replay_batch(session, winner, fingerprint), False
    except BaseException:
        session.rollback()
        raise
    if send is not None:
        dispatch(session, send, [(job_id, Queue.batch.value) for job_id in job_ids])
    return batch, job_ids, True


def _check_scheduler_metric(plan: Plan, models: Sequence[JobSpec]) -> None:
    """A validation metric needs a validation split in every job."""
    config = plan.record.get("scheduler")
    if not config or not config["metric"].startswith("val_"):
        return
    for index, model in enumerate(models):
        if not model.dataset.validation_split > 0:
            raise Invalid.at(
                ["body", "scheduler", "metric"],
                f"{config['metric']} needs a validation_split in every job; job {index} has none",
            )


def _check_inline_total(plan: Plan, limits: Limits) -> None:
    """Inline data is stored with every job: cap the batch's total like one dataset's."""
    total = 0
    for item in plan.expanded:
        dataset = item.spec.get("dataset")
        rows = dataset.get("X") if isinstance(dataset, dict) else None
        if isinstance(rows, list) and rows:
            width = len(rows[0]) if isinstance(rows[0], list) else 1
            total += len(rows) * width
    if total > limits.dataset_values:
        raise Invalid.at(
            ["body"],
            f"the batch carries {total} inline values in all (at most {limits.dataset_values}); "
            "store the data once with POST /datasets and use {'dataset': {'id': ...}}",
        )


def _rejected(plan: Plan, bad_jobs: int, errors: list[tuple[list[Any], str]]) -> Invalid:
    shown = f" (the first {MAX_REPORTED_JOBS} are listed)" if bad_jobs > MAX_REPORTED_JOBS else ""
    noun = "job is" if bad_jobs == 1 else "jobs are"
    first_loc, first_msg = errors[0]
    detail = (
        f"{bad_jobs} of {len(plan.expanded)} {noun} invalid{shown}; nothing was stored. "
        f"{'.'.join(str(p) for p in first_loc)}: {first_msg}"
    )
    return Invalid(detail, errors=errors)


def _replay_batch(session: Session, batch: Batch, fingerprint: str) -> tuple[Batch, list[str]]:
    idempotency.replay(batch, fingerprint)
    return batch, [job.id for job in batch_jobs(session, batch.id)]


# --- reading --------------------------------------------------------------------------


def get_batch(session: Session, tenant_id: str, batch_id: str) -> Batch:
    """The tenant's batch; another tenant's id is exactly as missing as an unknown one."""
    batch = session.scalar(select(Batch).where(Batch.id == batch_id, Batch.tenant_id == tenant_id))
    if batch is None:
        raise NotFound(f"no batch {batch_id}")
    return batch


# What summaries, cancel and dispatch read: never ``spec``, which may hold inline data.
SUMMARY_COLUMNS = (
    Job.id,
    Job.tenant_id,
    Job.batch_index,
    Job.name,
    Job.status,
    Job.queue,
    Job.params,
    Job.epoch,
    Job.epochs,
    Job.metrics,
    Job.error,
)


def batch_jobs(session: Session, batch_id: str) -> list[Job]:
    """The batch's jobs in batch order, without their specs."""
    query = (
        select(Job)
        .options(load_only(*SUMMARY_COLUMNS))
        .where(Job.batch_id == batch_id)
        .order_by(Job.batch_index)
    )
    return list(session.scalars(query))


def describe(session: Session, batch: Batch, job_ids: Sequence[str]) -> dict[str, Any]:
    """The answer to a submit: the batch, its job ids and their counts by status."""
    counts = summaries.status_counts(session, [batch.id])[batch.id]
    return responses.batch_dict(batch, job_ids, counts)


def summarize(session: Session, batch: Batch, metric: str, mode: str) -> dict[str, Any]:
    """Counts by status, progress, the best job and every job's varied params and metrics."""
    jobs = batch_jobs(session, batch.id)
    progress = summaries.batch_progress(session, [batch.id])[batch.id]
    best = summaries.best_job(jobs, metric, mode)
    return responses.batch_summary(batch, jobs, progress, metric, mode, best)


def list_batches(
    session: Session, tenant_id: str, limit: int | None, cursor: str | None, max_limit: int
) -> tuple[list[dict[str, Any]], str | None]:
    """A page of the tenant's batches, newest first (counts and progress, without job
    ids), and the cursor of the next page."""
    query = select(Batch).where(Batch.tenant_id == tenant_id)
    page, next_cursor = paginate(session, query, Batch, limit, cursor, max_limit)
    return list_items(session, page), next_cursor


def list_items(session: Session, page: Sequence[Batch]) -> list[dict[str, Any]]:
    """A page of batches for a list answer: counts and progress, without job ids."""
    ids = [batch.id for batch in page]
    counts = summaries.status_counts(session, ids)
    progress = summaries.batch_progress(session, ids)
    return [responses.batch_list_item(b, counts[b.id], progress[b.id]) for b in page]


# --- cancelling -----------------------------------------------------------------------


def cancel_batch(session: Session, tenant_id: str, batch_id: str) -> dict[str, Any]:
    """Cancel every unfinished job with the jobs domain's compare-and-set; commits per job.

    Queued jobs become ``cancelled`` at once, running ones ``cancelling`` (their run stops
    at its next flush). A job that finishes meanwhile is simply left as it ended.
    Returns the batch description with ``cancelled`` (ids whose cancel this call won or
    that were already cancelling).
    """
    batch = get_batch(session, tenant_id, batch_id)
    open_ids = session.scalars(
        select(Job.id)
        .where(Job.batch_id == batch.id, Job.status.in_([s.value for s in UNFINISHED]))
        .order_by(Job.batch_index)
    ).all()
    cancelled = []
    for job_id in open_ids:
        try:
            cancel_job(session, tenant_id, job_id)
        except Conflict:  # it finished (or kept moving) while we were cancelling
            continue
        cancelled.append(job_id)
    session.commit()
    return responses.cancelled_batch(batch, batch_jobs(session, batch.id), cancelled)
