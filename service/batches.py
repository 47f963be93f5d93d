"""Batch commands and queries: plan a sweep into jobs, submit it, read, summarise, cancel.

Kernel code (no Flask, no Celery). Functions take a session and raise ``service.problems``
errors. A batch and all its jobs are created in one transaction after every expanded spec
validated, so a bad combination stores nothing. The plan is ``service.plans`` (expansion:
``service.sweeps``; a TPE search's later trials: ``service.searches``), the rankings
``service.summaries``, the curves ``service.curves`` and the schedulers' decisions
``service.schedulers``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from typing import Any

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, load_only

from service import idempotency, quotas, summaries
from service.config import Limits
from service.cursors import paginate
from service.dispatch import Dispatcher
from service.importance import importance as importance_of
from service.jobs import cancel_job, create_job, parse_spec
from service.models import Batch, Job, TrialDecision
from service.plans import Plan, check_scheduler, check_scheduler_metric, plan_batch
from service.problems import Conflict, Invalid, NotFound
from service.quotas import QuotaLimits
from service.schemas.batch import BatchSubmit
from service.schemas.names import FINISHED, UNFINISHED, Queue
from service.schemas.responses.batches import (
    batch_dict,
    batch_list_item,
    batch_summary,
    cancelled_batch,
)
from service.schemas.responses.compare import importance_dict
from service.schemas.spec import JobSpec
from service.sweeps import varied_params

# --- creating -------------------------------------------------------------------------

# A rejected batch lists at most this many invalid jobs (the first ones, in batch order).
MAX_REPORTED_JOBS = 20


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
    dispatcher: Dispatcher | None = None,
    quota: QuotaLimits | None = None,
) -> tuple[Batch, list[str], bool]:
    """Validate every expanded spec, then create the batch and its jobs (``batch`` queue),
    COMMIT, and run a dispatch pass (without ``dispatcher``, the reaper's pass sends them).

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
    check_scheduler_metric(plan, models)
    params = [item.params for item in plan.expanded]
    varied = plan.varied
    if plan.kind == "jobs":
        params = varied_params([m.model_dump(mode="json") for m in models])
        varied = list(dict.fromkeys(p for ps in params for p in ps))
        if "scheduler" in plan.record:
            check_scheduler(plan.record["scheduler"], replace(plan, varied=varied))
    # Pass 2: dataset-aware checks and inserts in one transaction; the first error rolls
    # everything back.
    batch = Batch(
        tenant_id=tenant_id,
        name=body.name,
        spec=plan.record,
        varied=varied,
        growing=plan.kind == "tpe" and plan.record["search"]["trials"] > len(models),
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
                    quota=quota,
                    flush=False,  # all of them at once, below
                )
            except Invalid as err:
                raise _rejected(plan, 1, _invalid_job(plan, index, err)) from None
            job.batch_index = index
            job.origin = plan.origins[index]
            job_ids.append(job.id)
        session.flush()
        if quota is not None:  # admitted whole or not at all
            quotas.admit_queued(session, tenant_id, quota, added=len(job_ids))
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
    if dispatcher is not None:
        dispatcher.run(session)
    return batch, job_ids, True


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
    Job.origin,
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
    return batch_dict(batch, job_ids, counts)


def summarize(
    session: Session, batch: Batch, metric: str | None, mode: str | None, reduce: str = "last"
) -> dict[str, Any]:
    """Counts by status, progress, the best job, every job's varied params, metrics and
    origin, and what the scheduler decided (stops and PBT's exploits, in order).

    No ``metric``: ``summaries.default_metric`` (validation loss, or the training loss
    when no job has a validation split); ``metric_defaulted`` says the server chose.
    ``reduce`` (last, min, max) says which value of each job's curve ranks it."""
    jobs = batch_jobs(session, batch.id)
    defaulted = metric is None
    metric, mode = summaries.check_metric(metric or summaries.default_metric(jobs), mode)
    progress = summaries.batch_progress(session, [batch.id])[batch.id]
    best = summaries.best_job(jobs, metric, mode, reduce)
    decisions = session.scalars(
        select(TrialDecision)
        .where(TrialDecision.batch_id == batch.id, TrialDecision.action != "continue")
        .order_by(TrialDecision.created_at, TrialDecision.epoch)
    ).all()
    summary = batch_summary(batch, jobs, progress, metric, mode, best, decisions, reduce)
    return {**summary, "metric_defaulted": defaulted}


def importance(
    session: Session, batch: Batch, metric: str | None, mode: str | None, reduce: str = "last"
) -> dict[str, Any]:
    """Which varied parameter mattered for ``metric`` (``service.importance``), over the
    batch's finished jobs that have a value (taken by ``reduce``); 409 with fewer than
    ``importance.MIN_TRIALS`` of them."""
    jobs = batch_jobs(session, batch.id)
    metric, mode = summaries.check_metric(metric or summaries.default_metric(jobs), mode)
    trials = [
        (job.params or {}, value)
        for job in jobs
        if job.status in FINISHED and (value := summaries.reduced(job, metric, reduce)) is not None
    ]
    try:
        found = importance_of(list(batch.varied), [p for p, _ in trials], [v for _, v in trials])
    except ValueError as err:
        raise Conflict(f"importance of {metric}: {err} (finished jobs)") from None
    return importance_dict(metric, mode, reduce, found)


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
    return [batch_list_item(b, counts[b.id], progress[b.id]) for b in page]


# --- cancelling -----------------------------------------------------------------------


def cancel_batch(session: Session, tenant_id: str, batch_id: str) -> dict[str, Any]:
    """Cancel every unfinished job with the jobs domain's compare-and-set; commits per job.

    Queued jobs become ``cancelled`` at once, running ones ``cancelling`` (their run stops
    at its next flush). A job that finishes meanwhile is simply left as it ended.
    Returns the batch description with ``cancelled`` (ids whose cancel this call won or
    that were already cancelling).
    """
    batch = get_batch(session, tenant_id, batch_id)
    batch.growing = False  # a search makes no more trials
    session.flush()
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
    return cancelled_batch(batch, batch_jobs(session, batch.id), cancelled)
