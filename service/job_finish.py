"""A run's end, one transaction each: ``complete`` (its last points, then ``succeeded``
with the model, or ``cancelled``; the dispatch pass that refills its slot commits with
it), ``finish_succeeded``, ``finish_failed``, ``finish_cancelled``, and ``release`` (a
warm shutdown gives the job back). Every one is fenced by the run's attempt. See
``service.job_writes`` for the rules every write follows.

Kernel code: no Flask, no Celery, no worker imports.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from functools import lru_cache
from typing import Any

from sqlalchemy import and_, bindparam, case, delete, insert, update
from sqlalchemy.orm import Session

from service import counters, curve_store, summaries, webhooks
from service.clock import db_now, now_or_db
from service.db import transaction
from service.job_writes import (
    ENDED_COLUMNS,
    JOBS,
    MODELS,
    JobError,
    SessionFactory,
    finish_job,
    write_job,
)
from service.models import Checkpoint, Job, TrainedModel
from service.schemas.names import ACTIVE, JobStatus
from service.schemas.records import point_values


def finish_succeeded(
    factory: SessionFactory,
    job_id: str,
    attempt: int,
    *,
    weights: bytes,
    meta: dict[str, Any],
    now: datetime | None = None,
) -> bool:
    """Store the trained model and mark the job succeeded; False if the fence was lost."""
    now = now_or_db(now)
    with transaction(factory) as session:
        if not finish_job(session, job_id, attempt, JobStatus.succeeded, None, now):
            return False
        session.add(TrainedModel(job_id=job_id, weights=weights, meta=meta, created_at=now))
        session.execute(delete(Checkpoint).where(Checkpoint.job_id == job_id))
    return True


@dataclass(frozen=True)
class Completed:
    """What ``complete`` wrote: the final status, whether the tenant has webhooks (so the
    finish may have written deliveries to relay), and what the dispatch pass it ran in
    the same transaction chose (None if it ran none)."""

    status: str
    webhooks: bool
    chosen: Any = None


def complete(
    factory: SessionFactory,
    job_id: str,
    attempt: int,
    points: Sequence[dict[str, Any]],
    *,
    weights: bytes,
    meta: dict[str, Any],
    checkpointed: bool = True,
    first_write: bool = False,
    dispatch: Callable[[Session], Any] | None = None,
) -> Completed | None:
    """A run's last write, in one transaction: its last points, then ``succeeded`` with the
    model — or ``cancelled`` if a cancel was requested meanwhile (the points are kept).
    ``checkpointed=False`` (no checkpoint was loaded or saved) skips deleting it;
    ``first_write`` (the job's first run, which flushed nothing before) lets the job's
    summary be inserted without reading it first. ``dispatch`` (a dispatch pass's
    ``choose``) runs last, in the same transaction, so the freed slot is refilled with the
    same commit; its answer is ``Completed.chosen``, for the caller to send after it.

    Returns None if the fence was lost. One fenced UPDATE moves the job forward and
    finishes it (returning what the finish's counters and webhook events need) and one
    commit covers it all: a tiny job's bookkeeping is mostly statements and commits.
    """
    run = Finishing(job_id, attempt, points, weights, meta, checkpointed, first_write)
    return complete_many(factory, [run], dispatch=dispatch)[0]


@dataclass(frozen=True)
class Finishing:
    """One run's end as ``complete`` takes it (its arguments, kept for a group's finish)."""

    job_id: str
    attempt: int
    points: Sequence[dict[str, Any]]
    weights: bytes
    meta: dict[str, Any]
    checkpointed: bool = True
    first_write: bool = False


def complete_many(
    factory: SessionFactory,
    runs: Sequence[Finishing],
    *,
    dispatch: Callable[[Session], Any] | None = None,
) -> list[Completed | None]:
    """``complete`` for the runs of one group of tiny jobs (``service.dispatch.pack``), in
    one transaction and one commit; the dispatch pass, if any, runs once, last, with its
    answer on every ``Completed``. None for a run whose fence was lost (it wrote nothing;
    the others are unaffected). What every run writes alike is written once for the
    group: the counters, the tenant's webhook lookup, the models, the checkpoint delete."""
    with transaction(factory) as session:
        ended = [(run, _end(session, run)) for run in runs]
        rows = [(run, row) for run, row in ended if row is not None]
        amounts = _write_curves(session, rows)
        counters.add_many(session, counters.summed(amounts), shard_key=runs[0].job_id)
        hooks: dict[str, Any] = {}  # the tenant's webhooks, read once per tenant
        subscribed = {
            run.job_id: webhooks.job_ended(session, run.job_id, row, hooks) for run, row in rows
        }
        succeeded = [run for run, row in rows if row.status == JobStatus.succeeded.value]
        if succeeded:
            models = [{"job_id": r.job_id, "weights": r.weights, "meta": r.meta} for r in succeeded]
            session.execute(_insert_models(), models)
        stale = [run.job_id for run in succeeded if run.checkpointed]
        if stale:
            session.execute(delete(Checkpoint).where(Checkpoint.job_id.in_(stale)))
        chosen = dispatch(session) if dispatch is not None else None
    return [
        Completed(row.status, subscribed[run.job_id], chosen) if row is not None else None
        for run, row in ended
    ]


def _end(session: Session, run: Finishing) -> Any:
    """The run's fenced finish (``succeeded``, or ``cancelled`` if asked meanwhile) with its
    last point; the job's ended columns, or None if the fence was lost. A run that lost
    its job writes nothing (not even points); from here the transaction holds its row."""
    last = run.points[-1] if run.points else None
    finish = _finish_statement(last is not None)  # built once: job, attempt, point bound
    fence = {"fence_job": run.job_id, "fence_attempt": run.attempt}
    if last is not None:
        fence |= {"last_epoch": last["epoch"], "last_metrics": point_values(last)}
    return session.execute(finish, fence).one_or_none()


def _write_curves(session: Session, rows: list[tuple[Finishing, Any]]) -> list[Any]:
    """The runs' last points (summaries, points, curve levels); returns their counter rows.
    The curves nothing wrote before (a first run's only write: the usual tiny job) go
    together, a few statements for the group; the others merge into theirs one by one."""
    amounts: list[Any] = []
    for run, row in rows:
        amounts += counters.duration_amounts(row.status, row.started_at, row.finished_at)
        if run.points:
            amounts.append((counters.EPOCHS, float(len(run.points)), None))
    ended = [(run, row) for run, row in rows if run.points]
    firsts = [(run.job_id, row.tenant_id, run.points) for run, row in ended if run.first_write]
    new = summaries.record_firsts(session, firsts)
    curve_store.insert_new_curves(
        session, [(run.job_id, run.points) for run, _ in ended if run.job_id in new]
    )
    for run, row in ended:
        if run.job_id not in new:
            summaries.record(session, run.job_id, run.points, tenant_id=row.tenant_id)
            curve_store.insert_points(session, run.job_id, run.points)
    return amounts


@lru_cache(maxsize=1)
def _insert_models() -> Any:
    """The trained models' INSERT (several rows: an executemany), stamped on the
    database's clock; built once."""
    return insert(MODELS).values(created_at=db_now())


@lru_cache(maxsize=2)
def _finish_statement(with_point: bool) -> Any:
    """``complete``'s fenced UPDATE, built once (with or without a last point): the job
    (``fence_job``, ``fence_attempt``) and its last point (``last_epoch``,
    ``last_metrics``) are bound. Constructing it per finish cost CPU in every tiny job."""
    now = db_now()
    values: dict[str, Any] = {
        "status": case(
            (Job.cancel_requested.is_(True), JobStatus.cancelled.value),
            else_=JobStatus.succeeded.value,
        ),
        "error": None,
        "lease_owner": None,
        "lease_expires_at": None,
        "finished_at": now,
        "updated_at": now,
        "version": Job.version + 1,
    }
    if with_point:  # jobs.epoch and jobs.metrics only move forward
        epoch = bindparam("last_epoch", type_=JOBS.c.epoch.type)
        newer = Job.epoch < epoch
        metrics = bindparam("last_metrics", type_=JOBS.c.metrics.type)
        values["epoch"] = case((newer, epoch), else_=Job.epoch)
        values["metrics"] = case((newer, metrics), else_=Job.metrics)
    fence = and_(
        Job.id == bindparam("fence_job", type_=Job.id.type),
        Job.attempt == bindparam("fence_attempt", type_=JOBS.c.attempt.type),
        Job.status.in_(ACTIVE),
    )
    return (
        update(JOBS)
        .where(fence)
        .values(**values)
        .returning(*ENDED_COLUMNS)
        .execution_options(synchronize_session=False)
    )


def finish_failed(factory: SessionFactory, job_id: str, attempt: int, error: JobError) -> bool:
    """Mark the job failed with a problem-detail ``error`` ({type, message, epoch})."""
    with transaction(factory) as session:
        return finish_job(session, job_id, attempt, JobStatus.failed, error, db_now())


def finish_cancelled(factory: SessionFactory, job_id: str, attempt: int) -> bool:
    with transaction(factory) as session:
        return finish_job(session, job_id, attempt, JobStatus.cancelled, None, db_now())


def release(
    factory: SessionFactory, job_id: str, attempt: int, *, now: datetime | None = None
) -> str | None:
    """Give the job back (warm shutdown): queued again for another worker to resume.

    Returns the new status — ``"queued"`` (the caller runs a dispatch pass) or ``"cancelled"``
    when a cancel was pending — or None if the fence was lost.
    """
    now = now_or_db(now)
    with transaction(factory) as session:
        requeued = write_job(
            session,
            and_(Job.id == job_id, Job.attempt == attempt, Job.status == JobStatus.running.value),
            status=JobStatus.queued.value,
            releases=Job.releases + 1,  # handed over, not lost: no strike against the cap
            lease_owner=None,
            lease_expires_at=None,
            dispatched_at=None,  # for the next dispatch pass
            updated_at=now,
            version=Job.version + 1,
        )
        if requeued:
            return JobStatus.queued.value
        if finish_job(session, job_id, attempt, JobStatus.cancelled, None, now):
            return JobStatus.cancelled.value
    return None
