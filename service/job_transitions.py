"""The API's side of a job's row: transitions made in the caller's session, which never
commit — a status compare-and-set, a cancel request, the dispatch pass's record of what
it sends (and its undo when the send failed). See ``service.job_writes`` for the rules
every write follows.

Kernel code: no Flask, no Celery, no worker imports.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime
from functools import lru_cache
from typing import Any

from sqlalchemy import and_, bindparam, update
from sqlalchemy.orm import Session

from service.clock import db_now
from service.job_writes import JOBS, record_ended, write_job
from service.models import Job
from service.schemas.names import JobStatus
from service.timeutil import utcnow


def compare_and_set(session: Session, job_id: str, expected: Iterable[str], **values: Any) -> bool:
    """Set ``values`` only if the job's status is one of ``expected``; True if this call won."""
    where = and_(Job.id == job_id, Job.status.in_([str(s) for s in expected]))
    return write_job(session, where, version=Job.version + 1, updated_at=utcnow(), **values)


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
        record_ended(session, job_id, JobStatus.cancelled)
    return won


def mark_dispatched(
    session: Session,
    job_ids: Sequence[str],
    now: datetime | None = None,
    group: str | None = None,
) -> None:
    """Record that these jobs, if still queued, are being sent, in one UPDATE (a dispatch
    pass sends again the queued jobs whose dispatch is stale or missing), in the message
    ``group`` names (tiny jobs sent together; None: each alone). On the database's clock
    (a pass reads it once and passes it; ``service.clock``)."""
    statement = _mark_statement(now is None)  # built once: a pass runs after every job
    params: dict[str, Any] = {"dispatch_ids": list(job_ids), "dispatch_group": group}
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
        .values(
            dispatched_at=stamp,
            dispatch_group=bindparam("dispatch_group", type_=Job.dispatch_group.type),
            updated_at=stamp,
            version=Job.version + 1,
        )
    )


def undo_dispatch(session: Session, job_ids: Sequence[str], stamp: datetime) -> None:
    """The send of these jobs failed: clear the ``dispatched_at`` their pass wrote."""
    where = and_(
        Job.id.in_(list(job_ids)),
        Job.status == JobStatus.queued.value,
        Job.dispatched_at == stamp,
    )
    write_job(session, where, dispatched_at=None)
