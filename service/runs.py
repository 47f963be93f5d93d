"""The run-side job domain: claim with a lease, heartbeat, fenced writes, finish, reap.

The database is the source of truth. A run *claims* its job with a compare-and-set that
bumps ``attempt`` (the fencing token) and sets a lease; every later write of that run
matches ``WHERE id = ? AND attempt = ?`` and silently loses once another claim happened.
Each function here is one short transaction, so a worker never holds a session while
it computes. Every transaction starts with its write: on SQLite a read-then-write
transaction can fail with SQLITE_BUSY_SNAPSHOT, which the busy timeout cannot absorb.

This module is kernel code: no Flask, no Celery, no worker imports.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import CursorResult, Result, and_, case, delete, or_, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session, sessionmaker

from service.db import transaction
from service.models import Checkpoint, CurvePoint, Job, TrainedModel
from service.schemas.names import ACTIVE, JobStatus
from service.schemas.records import point_values
from service.timeutil import as_utc, utcnow

SessionFactory = sessionmaker[Session]


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


@dataclass(frozen=True)
class Pulse:
    """Answer of a fenced write: is the run still the owner, and was cancel asked for."""

    alive: bool
    cancel_requested: bool = False


def _fenced(job_id: str, attempt: int) -> Any:
    return and_(Job.id == job_id, Job.attempt == attempt, Job.status.in_(ACTIVE))


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
    pill never loops).
    """
    now = now or utcnow()
    claimable = or_(
        Job.status == JobStatus.queued.value,
        and_(
            Job.status == JobStatus.running.value,
            Job.lease_expires_at < now,
            Job.attempt - Job.releases < max_attempts,
        ),
    )
    with transaction(factory) as session:
        result = session.execute(
            update(Job)
            .where(Job.id == job_id, claimable)
            .values(
                status=JobStatus.running.value,
                attempt=Job.attempt + 1,
                lease_owner=owner,
                lease_expires_at=now + timedelta(seconds=lease_seconds),
                started_at=case((Job.started_at.is_(None), now), else_=Job.started_at),
                updated_at=now,
                version=Job.version + 1,
            )
            .execution_options(synchronize_session=False)
        )
        if _rowcount(result) != 1:
            return None
        row = session.execute(
            select(Job.attempt, Job.tenant_id, Job.queue, Job.spec, Job.epochs).where(
                Job.id == job_id
            )
        ).one()
        saved = session.execute(
            select(Checkpoint.epoch, Checkpoint.state).where(Checkpoint.job_id == job_id)
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
    )


def heartbeat(
    factory: SessionFactory,
    job_id: str,
    attempt: int,
    *,
    lease_seconds: float,
    now: datetime | None = None,
) -> Pulse:
    """Extend the lease of a run that is still the owner; report a pending cancel."""
    now = now or utcnow()
    with transaction(factory) as session:
        result = session.execute(
            update(Job)
            .where(_fenced(job_id, attempt))
            .values(lease_expires_at=now + timedelta(seconds=lease_seconds))
            .execution_options(synchronize_session=False)
        )
        if _rowcount(result) != 1:
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
) -> Pulse:
    """Persist curve points (and optionally the checkpoint they lead to) in one transaction.

    Points already stored (a resumed run recomputes the epochs after its checkpoint) are
    skipped by ON CONFLICT DO NOTHING. ``jobs.epoch`` and ``jobs.metrics`` only move
    forward. The write extends the lease, so a flush is also a heartbeat.
    """
    now = now or utcnow()
    if not points and checkpoint is None:
        return heartbeat(factory, job_id, attempt, lease_seconds=lease_seconds, now=now)
    values: dict[str, Any] = {
        "lease_expires_at": now + timedelta(seconds=lease_seconds),
        "updated_at": now,
        "version": Job.version + 1,
    }
    with transaction(factory) as session:
        result = session.execute(
            update(Job)
            .where(_fenced(job_id, attempt))
            .values(**values)
            .execution_options(synchronize_session=False)
        )
        if _rowcount(result) != 1:
            return Pulse(alive=False)
        if points:
            last = points[-1]
            session.execute(
                update(Job)
                .where(Job.id == job_id, Job.epoch < last["epoch"])
                .values(epoch=last["epoch"], metrics=point_values(last))
                .execution_options(synchronize_session=False)
            )
            rows = [{"job_id": job_id, **point_values(p)} for p in points]
            insert = _insert_for(session)
            # executemany with one cached statement: a multi-VALUES literal would be
            # compiled afresh for every flush (it cost as much as training tiny nets).
            session.execute(
                insert(CurvePoint).on_conflict_do_nothing(index_elements=["job_id", "epoch"]),
                rows,
            )
        if checkpoint is not None:
            _save_checkpoint(session, job_id, attempt, checkpoint, now)
        return Pulse(alive=True, cancel_requested=_cancel_requested(session, job_id))


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
    now = now or utcnow()
    with transaction(factory) as session:
        if not _finish(session, job_id, attempt, JobStatus.succeeded, None, now):
            return False
        session.add(TrainedModel(job_id=job_id, weights=weights, meta=meta, created_at=now))
        session.execute(delete(Checkpoint).where(Checkpoint.job_id == job_id))
    return True


def finish_failed(
    factory: SessionFactory,
    job_id: str,
    attempt: int,
    error: dict[str, Any],
    *,
    now: datetime | None = None,
) -> bool:
    """Mark the job failed with a problem-detail ``error`` ({type, message, epoch})."""
    with transaction(factory) as session:
        return _finish(session, job_id, attempt, JobStatus.failed, error, now or utcnow())


def finish_cancelled(
    factory: SessionFactory, job_id: str, attempt: int, *, now: datetime | None = None
) -> bool:
    with transaction(factory) as session:
        return _finish(session, job_id, attempt, JobStatus.cancelled, None, now or utcnow())


def release(
    factory: SessionFactory, job_id: str, attempt: int, *, now: datetime | None = None
) -> str | None:
    """Give the job back (warm shutdown): queued again for another worker to resume.

    Returns the new status — ``"queued"`` (the caller must dispatch it) or ``"cancelled"``
    when a cancel was pending — or None if the fence was lost.
    """
    now = now or utcnow()
    with transaction(factory) as session:
        requeued = session.execute(
            update(Job)
            .where(
                Job.id == job_id,
                Job.attempt == attempt,
                Job.status == JobStatus.running.value,
            )
            .values(
                status=JobStatus.queued.value,
                releases=Job.releases + 1,  # handed over, not lost: no strike against the cap
                lease_owner=None,
                lease_expires_at=None,
                dispatched_at=now,
                updated_at=now,
                version=Job.version + 1,
            )
            .execution_options(synchronize_session=False)
        )
        if _rowcount(requeued) == 1:
            return JobStatus.queued.value
        if _finish(session, job_id, attempt, JobStatus.cancelled, None, now):
            return JobStatus.cancelled.value
    return None


# --- the reaper's side ------------------------------------------------------------------


@dataclass
class Sweep:
    """What one reaper pass did. ``dispatch`` lists (job_id, queue) the caller must send."""

    dispatch: list[tuple[str, str]] = field(default_factory=list)
    requeued: list[str] = field(default_factory=list)
    exhausted: list[str] = field(default_factory=list)
    cancelled: list[str] = field(default_factory=list)


def sweep(
    factory: SessionFactory,
    *,
    max_attempts: int,
    requeue_after_seconds: float,
    now: datetime | None = None,
    limit: int = 500,
) -> Sweep:
    """One reaper pass: recover expired leases and queued jobs whose message may be lost.

    - ``cancelling`` with an expired lease → ``cancelled`` (its run is gone);
    - ``running`` with an expired lease → ``queued`` and re-dispatched, or ``failed`` with
      ``attempts_exhausted`` once ``max_attempts`` runs were lost (releases do not count);
    - ``queued`` and not dispatched for a while → dispatched again. The wait doubles with
      the job's age (at least ``requeue_after_seconds``), so a long backlog is not flooded
      with duplicates; a duplicate is harmless anyway (the claim is a compare-and-set).

    Every change is a compare-and-set, so any number of reapers on any hosts can run.
    """
    now = now or utcnow()
    result = Sweep()
    with transaction(factory) as session:
        expired = session.execute(
            select(Job.id, Job.status, Job.attempt, Job.releases, Job.queue)
            .where(Job.status.in_(ACTIVE), Job.lease_expires_at < now)
            .limit(limit)
        ).all()
        waiting = session.execute(
            select(Job.id, Job.queue, Job.created_at, Job.dispatched_at)
            .where(
                Job.status == JobStatus.queued.value,
                or_(
                    Job.dispatched_at.is_(None),
                    Job.dispatched_at < now - timedelta(seconds=requeue_after_seconds),
                ),
            )
            .limit(limit)
        ).all()
    for row in expired:
        _recover_expired(factory, row, max_attempts, now, result)
    for queued in waiting:
        if _redispatch_due(queued, requeue_after_seconds, now) and _take_dispatch(
            factory, queued.id, queued.dispatched_at, now
        ):
            result.dispatch.append((queued.id, queued.queue))
    return result


def _recover_expired(
    factory: SessionFactory, row: Any, max_attempts: int, now: datetime, result: Sweep
) -> None:
    still_expired = and_(
        Job.id == row.id,
        Job.attempt == row.attempt,
        Job.status == row.status,
        Job.lease_expires_at < now,
    )
    common: dict[str, Any] = {"lease_owner": None, "lease_expires_at": None, "updated_at": now}
    if row.status == JobStatus.cancelling.value:
        values = {**common, "status": JobStatus.cancelled.value, "finished_at": now}
        target = result.cancelled
    elif row.attempt - row.releases >= max_attempts:
        error = {
            "type": "attempts_exhausted",
            "message": f"gave up after {row.attempt - row.releases} attempts: "
            "the run was lost each time "
            "(worker killed or lease expired)",
            "epoch": None,
        }
        values = {**common, "status": JobStatus.failed.value, "finished_at": now, "error": error}
        target = result.exhausted
    else:
        values = {**common, "status": JobStatus.queued.value, "dispatched_at": now}
        target = result.requeued
    with transaction(factory) as session:
        won = session.execute(
            update(Job)
            .where(still_expired)
            .values(**values, version=Job.version + 1)
            .execution_options(synchronize_session=False)
        )
    if _rowcount(won) == 1:
        target.append(row.id)
        if target is result.requeued:
            result.dispatch.append((row.id, row.queue))


def _redispatch_due(row: Any, requeue_after_seconds: float, now: datetime) -> bool:
    created = as_utc(row.created_at) or now  # NOT NULL in the schema
    last = as_utc(row.dispatched_at) or created
    wait = max(requeue_after_seconds, (last - created).total_seconds())
    return (now - last).total_seconds() >= wait


def _take_dispatch(
    factory: SessionFactory, job_id: str, seen: datetime | None, now: datetime
) -> bool:
    unchanged = Job.dispatched_at.is_(None) if seen is None else Job.dispatched_at == seen
    with transaction(factory) as session:
        won = session.execute(
            update(Job)
            .where(Job.id == job_id, Job.status == JobStatus.queued.value, unchanged)
            .values(dispatched_at=now)
            .execution_options(synchronize_session=False)
        )
    return _rowcount(won) == 1


# --- helpers ------------------------------------------------------------------------------


def _finish(
    session: Session,
    job_id: str,
    attempt: int,
    status: JobStatus,
    error: dict[str, Any] | None,
    now: datetime,
) -> bool:
    result = session.execute(
        update(Job)
        .where(_fenced(job_id, attempt))
        .values(
            status=status.value,
            error=error,
            lease_owner=None,
            lease_expires_at=None,
            finished_at=now,
            updated_at=now,
            version=Job.version + 1,
        )
        .execution_options(synchronize_session=False)
    )
    return _rowcount(result) == 1


def _cancel_requested(session: Session, job_id: str) -> bool:
    flag = session.execute(select(Job.cancel_requested).where(Job.id == job_id)).scalar_one()
    return bool(flag)


def _insert_for(session: Session) -> Any:
    """The dialect's INSERT, which has ON CONFLICT on PostgreSQL and SQLite alike."""
    dialect = session.get_bind().dialect.name
    if dialect == "postgresql":
        return postgresql.insert
    if dialect == "sqlite":
        return sqlite.insert
    raise RuntimeError(f"unsupported database dialect {dialect!r}")  # pragma: no cover


def _save_checkpoint(
    session: Session, job_id: str, attempt: int, checkpoint: tuple[int, bytes], now: datetime
) -> None:
    epoch, state = checkpoint
    insert = _insert_for(session)
    statement = insert(Checkpoint).values(
        job_id=job_id, attempt=attempt, epoch=epoch, state=state, created_at=now
    )
    session.execute(
        statement.on_conflict_do_update(
            index_elements=["job_id"],
            set_={"attempt": attempt, "epoch": epoch, "state": state, "created_at": now},
        )
    )


def _rowcount(result: Result[Any]) -> int:
    """Rows matched by an UPDATE/DELETE: how a compare-and-set knows whether it won."""
    assert isinstance(result, CursorResult)
    return result.rowcount
