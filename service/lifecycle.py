"""Every write to a job's row: claims, the fenced writes of a run, finishes, cancel
requests, the dispatch record and the reaper's recoveries.

The database is the source of truth. A run *claims* its job with a compare-and-set that
bumps ``attempt`` (the fencing token) and sets a lease; every later write of that run
matches ``WHERE id = ? AND attempt = ?`` and silently loses once another claim happened.
Every other change of status is a compare-and-set on the expected status, and every
write that changes what a client sees bumps ``jobs.version`` (the ETag).

Run-side functions are one short transaction each (they take a session factory), so a
worker never holds a session while it computes. Every transaction starts with its write:
on SQLite a read-then-write transaction can fail with SQLITE_BUSY_SNAPSHOT, which the
busy timeout cannot absorb. API-side functions take the caller's session and never commit.

Kernel code: no Flask, no Celery, no worker imports.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from functools import lru_cache
from typing import Any, cast

from sqlalchemy import (
    CursorResult,
    Result,
    Table,
    and_,
    bindparam,
    case,
    delete,
    insert,
    or_,
    select,
    update,
)
from sqlalchemy.orm import Session, sessionmaker

from service import counters, curve_store, summaries, webhooks
from service.clock import after_or_db, db_after, db_now, now_or_db
from service.db import dialect_insert, transaction
from service.models import Batch, Checkpoint, Job, TrainedModel
from service.schemas.names import ACTIVE, JobStatus
from service.schemas.records import point_values
from service.timeutil import utcnow

SessionFactory = sessionmaker[Session]
# The run's writes are Core statements on the tables (no ORM bulk-update or unit-of-work
# path: a tiny job's time is mostly its statements).
JOBS = cast(Table, Job.__table__)
MODELS = cast(Table, TrainedModel.__table__)
JobError = dict[str, Any]  # jobs.error of a failed job: {type, message, epoch}


@dataclass(frozen=True)
class Claim:
    """What a run needs after it won its job; ``attempt`` fences all its writes."""

    job_id: str
    attempt: int
    owner: str
    tenant_id: str
    queue: str
    spec: dict[str, Any]
    epochs: int
    checkpoint_epoch: int | None = None
    checkpoint: bytes | None = field(default=None, repr=False)
    batch_id: str | None = None
    batch_index: int | None = None
    checkpoint_adopted: bool = False  # copied from another trial (PBT): adopt, not resume
    # The batch's spec, varied paths and whether its search still grows, read with the
    # claim so that a trial's run needs no read of its own for them.
    batch_spec: dict[str, Any] | None = field(default=None, repr=False)
    batch_varied: list[Any] | None = field(default=None, repr=False)
    batch_growing: bool = False


@dataclass(frozen=True)
class Pulse:
    """Answer of a fenced write: is the run still the owner, and was cancel asked for."""

    alive: bool
    cancel_requested: bool = False
    decision: Any = None  # what a flush's ``decide`` returned (a scheduler's report)


def fenced(job_id: str, attempt: int) -> Any:
    """The job as this run claimed it: same attempt, still owned by a run."""
    return and_(Job.id == job_id, Job.attempt == attempt, Job.status.in_(ACTIVE))


def rowcount(result: Result[Any]) -> int:
    """Rows matched by an UPDATE/DELETE: how a compare-and-set knows whether it won."""
    assert isinstance(result, CursorResult)
    return result.rowcount


def _update(session: Session, where: Any, **values: Any) -> bool:
    """``UPDATE jobs SET values WHERE where``; True if it matched the one job (it won)."""
    statement = update(JOBS).where(where).values(**values)  # Core: no ORM bulk-update path
    return rowcount(session.execute(statement)) == 1


# --- the API's side (the caller's session, no commit) -------------------------------------


def compare_and_set(session: Session, job_id: str, expected: Iterable[str], **values: Any) -> bool:
    """Set ``values`` only if the job's status is one of ``expected``; True if this call won."""
    where = and_(Job.id == job_id, Job.status.in_([str(s) for s in expected]))
    return _update(session, where, version=Job.version + 1, updated_at=utcnow(), **values)


def request_cancel(session: Session, job_id: str, status: str) -> bool:
    """queued → cancelled at once; running → cancelling (the run stops at its next flush).

    ``status`` is what the caller read (queued or running); False if the job has moved on.
    """
    now = utcnow()
    if status == JobStatus.queued:
        ended = {"status": JobStatus.cancelled.value, "finished_at": now}
    else:
        ended = {"status": JobStatus.cancelling.value}
    won = compare_and_set(session, job_id, [status], cancel_requested=True, **ended)
    if won and status == JobStatus.queued:
        _ended(session, job_id, JobStatus.cancelled)
    return won


def mark_dispatched(session: Session, job_ids: Sequence[str], now: datetime | None = None) -> None:
    """Record that these jobs, if still queued, are being sent, in one UPDATE (a dispatch
    pass sends again the queued jobs whose dispatch is stale or missing). On the
    database's clock (a pass reads it once and passes it; ``service.clock``)."""
    statement = _mark_statement(now is None)  # built once: a pass runs after every job
    params: dict[str, Any] = {"dispatch_ids": list(job_ids)}
    if now is not None:
        params["dispatch_stamp"] = now
    session.execute(statement, params)


@lru_cache(maxsize=2)
def _mark_statement(on_db_clock: bool) -> Any:
    """``mark_dispatched``'s UPDATE (ids bound as ``dispatch_ids``; the time is the
    database's clock or ``dispatch_stamp``)."""
    stamp = (
        db_now() if on_db_clock else bindparam("dispatch_stamp", type_=JOBS.c.dispatched_at.type)
    )
    ids = bindparam("dispatch_ids", type_=Job.id.type, expanding=True)
    where = and_(Job.id.in_(ids), Job.status == JobStatus.queued.value)
    return (
        update(JOBS)
        .where(where)
        .values(dispatched_at=stamp, updated_at=stamp, version=Job.version + 1)
    )


def undo_dispatch(session: Session, job_ids: Sequence[str], stamp: datetime) -> None:
    """The send of these jobs failed: clear the ``dispatched_at`` their pass wrote."""
    where = and_(
        Job.id.in_(list(job_ids)),
        Job.status == JobStatus.queued.value,
        Job.dispatched_at == stamp,
    )
    _update(session, where, dispatched_at=None)


# --- the run's side (one short transaction each) ------------------------------------------


def claim(
    factory: SessionFactory,
    job_id: str,
    owner: str,
    *,
    lease_seconds: float,
    max_attempts: int,
    now: datetime | None = None,
) -> Claim | None:
    """Take the job if it is queued, or running with an expired lease; None if taken.

    The reclaim of an expired lease is refused once ``max_attempts`` runs were lost
    (claims minus warm-shutdown releases): the reaper then fails the job instead (a poison
    pill never loops). Leases are on the database's clock (``service.clock``) unless the
    caller fixes ``now`` (tests).
    """
    if now is None:  # the database's clock: the statement is built once per settings
        take = _take_on_db_clock(lease_seconds, max_attempts)
    else:
        take = _take(now + timedelta(seconds=lease_seconds), now, max_attempts)
    who = {"claim_job": job_id, "claim_owner": owner}
    with transaction(factory) as session:
        # The claim and its read are one statement (the compare-and-set RETURNING the job).
        row = session.execute(take, who).one_or_none()
        if row is None:
            return None
        # Only a run after another (resumed, released or exploited) can find a checkpoint.
        saved = None
        if row.attempt > 1:
            saved = session.execute(
                select(Checkpoint.epoch, Checkpoint.state, Checkpoint.adopted).where(
                    Checkpoint.job_id == job_id
                )
            ).one_or_none()
    return Claim(
        job_id=job_id,
        attempt=row.attempt,
        owner=owner,
        tenant_id=row.tenant_id,
        queue=row.queue,
        spec=row.spec,
        epochs=row.epochs,
        checkpoint_epoch=saved.epoch if saved else None,
        checkpoint=saved.state if saved else None,
        batch_id=row.batch_id,
        batch_index=row.batch_index,
        checkpoint_adopted=bool(saved and saved.adopted),
        batch_spec=row.batch_spec,
        batch_varied=row.varied,
        batch_growing=bool(row.growing),
    )


@lru_cache(maxsize=8)
def _take_on_db_clock(lease_seconds: float, max_attempts: int) -> Any:
    """The claim on the database's clock, built once per lease and cap (they are settings):
    constructing it anew cost a noticeable part of a tiny job's CPU."""
    return _take(db_after(lease_seconds), db_now(), max_attempts)


def _take(lease_end: Any, now: Any, max_attempts: int) -> Any:
    """The claim's compare-and-set (job id and owner bound: ``claim_job``, ``claim_owner``),
    returning the job and its batch's columns."""
    claimable = or_(
        Job.status == JobStatus.queued.value,
        and_(
            Job.status == JobStatus.running.value,
            Job.lease_expires_at < now,
            Job.attempt - Job.releases < max_attempts,
        ),
    )
    batch = _batch_column  # the job's batch: its spec, varied paths and growth
    return (
        update(JOBS)
        .where(Job.id == bindparam("claim_job", type_=Job.id.type), claimable)
        .values(
            status=JobStatus.running.value,
            attempt=Job.attempt + 1,
            lease_owner=bindparam("claim_owner", type_=Job.lease_owner.type),
            lease_expires_at=lease_end,
            started_at=case((Job.started_at.is_(None), now), else_=Job.started_at),
            updated_at=now,
            version=Job.version + 1,
        )
        .returning(
            Job.attempt,
            Job.tenant_id,
            Job.queue,
            Job.spec,
            Job.epochs,
            Job.batch_id,
            Job.batch_index,
            batch(Batch.spec).label("batch_spec"),
            batch(Batch.varied).label("varied"),
            batch(Batch.growing).label("growing"),
        )
        .execution_options(synchronize_session=False)
    )


def _batch_column(column: Any) -> Any:
    """``column`` of the job's batch, as a scalar subquery of a statement on ``jobs``."""
    return select(column).where(Batch.id == Job.batch_id).correlate(Job).scalar_subquery()


def heartbeat(
    factory: SessionFactory,
    job_id: str,
    attempt: int,
    *,
    lease_seconds: float,
    now: datetime | None = None,
) -> Pulse:
    """Extend the lease of a run that is still the owner; report a pending cancel."""
    with transaction(factory) as session:
        lease = after_or_db(now, lease_seconds)
        if not _update(session, fenced(job_id, attempt), lease_expires_at=lease):
            return Pulse(alive=False)
        return Pulse(alive=True, cancel_requested=_cancel_requested(session, job_id))


def flush(
    factory: SessionFactory,
    job_id: str,
    attempt: int,
    points: Sequence[dict[str, Any]],
    *,
    lease_seconds: float,
    checkpoint: tuple[int, bytes] | None = None,
    now: datetime | None = None,
    decide: Callable[[Session], Any] | None = None,
) -> Pulse:
    """Persist curve points (and optionally the checkpoint they lead to) in one transaction.

    Points already stored (a resumed run recomputes the epochs after its checkpoint) are
    skipped (``curve_store.insert_points``). ``jobs.epoch`` and ``jobs.metrics`` only move
    forward; the job's summary takes the new points (``summaries.record``). The write
    extends the lease, so a flush is also a heartbeat. ``decide`` (a scheduler's report,
    ``service.schedulers.reports``) runs last in the same transaction: the points, the
    checkpoint and the decision commit together; ``Pulse.decision`` is its answer.
    """
    if not points and checkpoint is None and decide is None:
        return heartbeat(factory, job_id, attempt, lease_seconds=lease_seconds, now=now)
    lease = after_or_db(now, lease_seconds)
    now = now_or_db(now)
    with transaction(factory) as session:
        values = {"lease_expires_at": lease, "updated_at": now, "version": Job.version + 1}
        if not _update(session, fenced(job_id, attempt), **values):
            return Pulse(alive=False)
        if points:
            _write_points(session, job_id, points)
        if checkpoint is not None:
            _save_checkpoint(session, job_id, attempt, checkpoint, now)
        cancel = _cancel_requested(session, job_id)
        return Pulse(True, cancel, decide(session) if decide is not None else None)


def record_gradient_check(
    factory: SessionFactory, job_id: str, attempt: int, report: dict[str, Any]
) -> bool:
    """Save the pre-training gradient check's report on the job; False if the run lost it."""
    now = db_now()
    with transaction(factory) as session:
        return _update(
            session,
            fenced(job_id, attempt),
            gradient_check=report,
            updated_at=now,
            version=Job.version + 1,
        )


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
        if not _finish(session, job_id, attempt, JobStatus.succeeded, None, now):
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
    now = db_now()
    last = points[-1] if points else None
    finish = _finish_statement(last is not None)  # built once: job, attempt, point bound
    fence = {"fence_job": job_id, "fence_attempt": attempt}
    if last is not None:
        fence |= {"last_epoch": last["epoch"], "last_metrics": point_values(last)}
    with transaction(factory) as session:
        # The fenced write first: a run that lost its job writes nothing (not even points),
        # and from here this transaction holds the job's row.
        row = session.execute(finish, fence).one_or_none()
        if row is None:
            return None
        status = JobStatus(row.status)
        amounts = counters.duration_amounts(status.value, row.started_at, row.finished_at)
        if points:
            tenant = row.tenant_id
            first = summaries.record(session, job_id, points, tenant_id=tenant, first=first_write)
            curve_store.insert_points(session, job_id, points, first=first)
            amounts.append((counters.EPOCHS, float(len(points)), None))
        counters.add_many(session, amounts, shard_key=job_id)
        subscribed = webhooks.job_ended(session, job_id, row)
        if status == JobStatus.succeeded:
            model = {"job_id": job_id, "weights": weights, "meta": meta, "created_at": now}
            session.execute(insert(MODELS).values(model))
            if checkpointed:
                session.execute(delete(Checkpoint).where(Checkpoint.job_id == job_id))
        chosen = dispatch(session) if dispatch is not None else None
    return Completed(status.value, subscribed, chosen)


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
        .returning(*_ENDED_COLUMNS)
        .execution_options(synchronize_session=False)
    )


def finish_failed(factory: SessionFactory, job_id: str, attempt: int, error: JobError) -> bool:
    """Mark the job failed with a problem-detail ``error`` ({type, message, epoch})."""
    with transaction(factory) as session:
        return _finish(session, job_id, attempt, JobStatus.failed, error, db_now())


def finish_cancelled(factory: SessionFactory, job_id: str, attempt: int) -> bool:
    with transaction(factory) as session:
        return _finish(session, job_id, attempt, JobStatus.cancelled, None, db_now())


def release(
    factory: SessionFactory, job_id: str, attempt: int, *, now: datetime | None = None
) -> str | None:
    """Give the job back (warm shutdown): queued again for another worker to resume.

    Returns the new status — ``"queued"`` (the caller runs a dispatch pass) or ``"cancelled"``
    when a cancel was pending — or None if the fence was lost.
    """
    now = now_or_db(now)
    with transaction(factory) as session:
        requeued = _update(
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
        if _finish(session, job_id, attempt, JobStatus.cancelled, None, now):
            return JobStatus.cancelled.value
    return None


# --- a scheduler's decisions, inside the run's flush (see service.schedulers.reports) ------


def stop_trial(session: Session, job_id: str, attempt: int, now: datetime) -> bool:
    """A scheduler stopped the run's trial: it ends ``cancelled`` (fenced)."""
    return _finish(session, job_id, attempt, JobStatus.cancelled, None, now)


def exploit(
    session: Session, job_id: str, attempt: int, parent_id: str, spec: dict[str, Any],
    params: dict[str, Any], origin: dict[str, Any], now: datetime,
) -> int | None:  # fmt: skip
    """PBT: the trial takes the parent's latest checkpoint (``adopted``) and its explored
    ``spec``, and goes back to ``queued`` to resume from it (a release, not a lost run);
    its curve goes on from the copied epoch (``curve_store.continue_from``). Returns that epoch,
    or None if the fence was lost or the parent has no checkpoint."""
    saved = session.execute(
        select(Checkpoint.epoch, Checkpoint.state).where(Checkpoint.job_id == parent_id)
    ).one_or_none()
    last = session.scalar(select(Job.epoch).where(Job.id == job_id))
    if saved is None or last is None:
        return None
    origin = {**origin, "epoch": saved.epoch}
    moved = {"spec": spec, "params": params, "origin": origin, "epochs": spec["training"]["epochs"]}
    if not _update(
        session, fenced(job_id, attempt), status=JobStatus.queued.value,
        releases=Job.releases + 1, lease_owner=None, lease_expires_at=None, dispatched_at=None,
        epoch=saved.epoch, updated_at=now, version=Job.version + 1, **moved,
    ):  # fmt: skip
        return None
    point = curve_store.continue_from(session, job_id, parent_id, last, saved.epoch)
    summaries.rebuild(session, job_id)
    _update(session, Job.id == job_id, metrics=point)
    _save_checkpoint(session, job_id, attempt, (saved.epoch, saved.state), now, adopted=True)
    return int(saved.epoch)


# --- the reaper's side (see service.recovery) -----------------------------------------------


def recover_expired(factory: SessionFactory, row: Any, max_attempts: int, now: datetime) -> str:
    """Recover one job whose lease expired, as ``row`` (id, status, attempt, releases) saw it.

    ``cancelling`` → ``cancelled`` (its run is gone); ``running`` → ``queued`` (for the
    next dispatch pass), or ``failed`` with ``attempts_exhausted`` once ``max_attempts`` runs
    were lost. Returns what happened — ``"cancelled"``, ``"exhausted"`` or ``"requeued"`` —
    or ``""`` when the job moved on first (another reaper, or its run came back).
    """
    still_expired = and_(
        Job.id == row.id,
        Job.attempt == row.attempt,
        Job.status == row.status,
        Job.lease_expires_at < now,
    )
    common: dict[str, Any] = {"lease_owner": None, "lease_expires_at": None, "updated_at": now}
    if row.status == JobStatus.cancelling.value:
        values = {**common, "status": JobStatus.cancelled.value, "finished_at": now}
        outcome = "cancelled"
    elif row.attempt - row.releases >= max_attempts:
        error = {
            "type": "attempts_exhausted",
            "message": f"gave up after {row.attempt - row.releases} attempts: "
            "the run was lost each time "
            "(worker killed or lease expired)",
            "epoch": None,
        }
        values = {**common, "status": JobStatus.failed.value, "finished_at": now, "error": error}
        outcome = "exhausted"
    else:
        values = {**common, "status": JobStatus.queued.value, "dispatched_at": None}
        outcome = "requeued"
    with transaction(factory) as session:
        won = _update(session, still_expired, **values, version=Job.version + 1)
        if won:
            labels = {"outcome": outcome}
            counters.add(session, counters.RECOVERED, labels=labels, shard_key=row.id)
            if outcome != "requeued":
                _ended(session, row.id, JobStatus(values["status"]))
    return outcome if won else ""


# --- helpers --------------------------------------------------------------------------------


def _finish(
    session: Session,
    job_id: str,
    attempt: int,
    status: JobStatus,
    error: JobError | None,
    now: Any,  # a datetime, or the database's clock (service.clock)
    where: Any = None,  # the fence, or a narrower condition
) -> bool:
    won = _update(
        session,
        fenced(job_id, attempt) if where is None else where,
        status=status.value,
        error=error,
        lease_owner=None,
        lease_expires_at=None,
        finished_at=now,
        updated_at=now,
        version=Job.version + 1,
    )
    if won:
        _ended(session, job_id, status)
    return won


# What a finish's counters and webhook events read of the job (as stored: ``finished_at``
# may have been the database's clock).
_ENDED_COLUMNS = (
    Job.tenant_id, Job.name, Job.status, Job.batch_id, Job.error, Job.metrics,
    Job.created_at, Job.started_at, Job.finished_at,
)  # fmt: skip


def _ended(session: Session, job_id: str, status: JobStatus) -> None:
    """What every change to a finished status does in its own transaction: the run's
    duration into ``deltaflow_job_duration_seconds`` (``service.counters``) and the
    webhook events it causes into the outbox (``service.webhooks``). Both times are read
    back as stored (``finished_at`` may have been the database's clock)."""
    row = session.execute(select(*_ENDED_COLUMNS).where(Job.id == job_id)).one()
    counters.observe_duration(session, job_id, status.value, row.started_at, row.finished_at)
    webhooks.job_ended(session, job_id, row)


def _write_points(session: Session, job_id: str, points: Sequence[dict[str, Any]]) -> None:
    """Curve points after the run's fenced write won: the rows, ``jobs.epoch`` and
    ``jobs.metrics`` (forward only), the epochs counter and the job's summary."""
    last = points[-1]
    newer = and_(Job.id == job_id, Job.epoch < last["epoch"])
    _update(session, newer, epoch=last["epoch"], metrics=point_values(last))
    curve_store.insert_points(session, job_id, points)
    counters.add(session, counters.EPOCHS, len(points), shard_key=job_id)
    summaries.record(session, job_id, points)


def _cancel_requested(session: Session, job_id: str) -> bool:
    flag = session.execute(select(Job.cancel_requested).where(Job.id == job_id)).scalar_one()
    return bool(flag)


def _save_checkpoint(
    session: Session,
    job_id: str,
    attempt: int,
    checkpoint: tuple[int, bytes],
    now: Any,
    adopted: bool = False,
) -> None:
    epoch, state = checkpoint
    values = {"attempt": attempt, "epoch": epoch, "state": state, "created_at": now}
    statement = dialect_insert(session)(Checkpoint).values(job_id=job_id, adopted=adopted, **values)
    session.execute(
        statement.on_conflict_do_update(
            index_elements=["job_id"], set_={**values, "adopted": adopted}
        )
    )
