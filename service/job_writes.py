"""What every write to a job's row shares: the fence, the status compare-and-set's
``UPDATE``, a finish and what every finish does, the checkpoint's upsert.

The database is the source of truth. A run *claims* its job with a compare-and-set that
bumps ``attempt`` (the fencing token) and sets a lease; every later write of that run
matches ``WHERE id = ? AND attempt = ?`` and silently loses once another claim happened.
Every other change of status is a compare-and-set on the expected status, and every
write that changes what a client sees bumps ``jobs.version`` (the ETag).

The writes themselves, one module per moment of a job's life:

- ``service.job_claim``: a run takes its job (the claim);
- ``service.job_progress``: the run's fenced writes while it trains (heartbeat, flush,
  gradient check);
- ``service.job_finish``: the run's end (complete, failed, cancelled, released);
- ``service.job_decisions``: a scheduler's decisions inside the run's flush (stop, exploit);
- ``service.job_transitions``: the API's side, in the caller's session (cancel request,
  the dispatch record);
- ``service.recovery``: the reaper's recoveries of jobs whose run was lost.

Run-side functions are one short transaction each (they take a session factory), so a
worker never holds a session while it computes. Every transaction starts with its write:
on SQLite a read-then-write transaction can fail with SQLITE_BUSY_SNAPSHOT, which the
busy timeout cannot absorb. API-side functions take the caller's session and never commit.

Kernel code: no Flask, no Celery, no worker imports.
"""

from __future__ import annotations

from typing import Any, cast

from sqlalchemy import CursorResult, Result, Table, and_, select, update
from sqlalchemy.orm import Session, sessionmaker

from service import counters, webhooks
from service.db import dialect_insert
from service.models import Checkpoint, Job, TrainedModel
from service.schemas.names import ACTIVE, JobStatus

SessionFactory = sessionmaker[Session]
# The run's writes are Core statements on the tables (no ORM bulk-update or unit-of-work
# path: a tiny job's time is mostly its statements).
JOBS = cast(Table, Job.__table__)
MODELS = cast(Table, TrainedModel.__table__)
JobError = dict[str, Any]  # jobs.error of a failed job: {type, message, epoch}


def fenced(job_id: str, attempt: int) -> Any:
    """The job as this run claimed it: same attempt, still owned by a run."""
    return and_(Job.id == job_id, Job.attempt == attempt, Job.status.in_(ACTIVE))


def rowcount(result: Result[Any]) -> int:
    """Rows matched by an UPDATE/DELETE: how a compare-and-set knows whether it won."""
    assert isinstance(result, CursorResult)
    return result.rowcount


def write_job(session: Session, where: Any, **values: Any) -> bool:
    """``UPDATE jobs SET values WHERE where``; True if it matched the one job (it won)."""
    statement = update(JOBS).where(where).values(**values)  # Core: no ORM bulk-update path
    return rowcount(session.execute(statement)) == 1


def finish_job(
    session: Session,
    job_id: str,
    attempt: int,
    status: JobStatus,
    error: JobError | None,
    now: Any,  # a datetime, or the database's clock (service.clock)
    where: Any = None,  # the fence, or a narrower condition
) -> bool:
    won = write_job(
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
        record_ended(session, job_id, status)
    return won


# What a finish's counters and webhook events read of the job (as stored: ``finished_at``
# may have been the database's clock).
ENDED_COLUMNS = (
    Job.tenant_id, Job.name, Job.status, Job.batch_id, Job.error, Job.metrics,
    Job.created_at, Job.started_at, Job.finished_at,
)  # fmt: skip


def record_ended(session: Session, job_id: str, status: JobStatus) -> None:
    """What every change to a finished status does in its own transaction: the run's
    duration into ``deltaflow_job_duration_seconds`` (``service.counters``) and the
    webhook events it causes into the outbox (``service.webhooks``). Both times are read
    back as stored (``finished_at`` may have been the database's clock)."""
    row = session.execute(select(*ENDED_COLUMNS).where(Job.id == job_id)).one()
    counters.observe_duration(session, job_id, status.value, row.started_at, row.finished_at)
    webhooks.job_ended(session, job_id, row)


def save_checkpoint(
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
