"""A running job's fenced writes while it trains, one short transaction each: the
heartbeat (extends the lease), the flush (curve points, checkpoint, a scheduler's
decision) and the pre-training gradient check's report. Each answers whether the run
still owns its job and whether a cancel was asked for (``Pulse``). See
``service.job_writes`` for the rules every write follows.

Kernel code: no Flask, no Celery, no worker imports.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import and_, select
from sqlalchemy.orm import Session

from service import counters, curve_store, summaries
from service.clock import after_or_db, db_now, now_or_db
from service.db import transaction
from service.job_writes import SessionFactory, fenced, save_checkpoint, write_job
from service.models import Job
from service.schemas.records import point_values


@dataclass(frozen=True)
class Pulse:
    """Answer of a fenced write: is the run still the owner, and was cancel asked for."""

    alive: bool
    cancel_requested: bool = False
    decision: Any = None  # what a flush's ``decide`` returned (a scheduler's report)


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
        if not write_job(session, fenced(job_id, attempt), lease_expires_at=lease):
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
        if not write_job(session, fenced(job_id, attempt), **values):
            return Pulse(alive=False)
        if points:
            _write_points(session, job_id, points)
        if checkpoint is not None:
            save_checkpoint(session, job_id, attempt, checkpoint, now)
        cancel = _cancel_requested(session, job_id)
        return Pulse(True, cancel, decide(session) if decide is not None else None)


def record_gradient_check(
    factory: SessionFactory, job_id: str, attempt: int, report: dict[str, Any]
) -> bool:
    """Save the pre-training gradient check's report on the job; False if the run lost it."""
    now = db_now()
    with transaction(factory) as session:
        return write_job(
            session,
            fenced(job_id, attempt),
            gradient_check=report,
            updated_at=now,
            version=Job.version + 1,
        )


def _write_points(session: Session, job_id: str, points: Sequence[dict[str, Any]]) -> None:
    """Curve points after the run's fenced write won: the rows, ``jobs.epoch`` and
    ``jobs.metrics`` (forward only), the epochs counter and the job's summary."""
    last = points[-1]
    newer = and_(Job.id == job_id, Job.epoch < last["epoch"])
    write_job(session, newer, epoch=last["epoch"], metrics=point_values(last))
    curve_store.insert_points(session, job_id, points)
    counters.add(session, counters.EPOCHS, len(points), shard_key=job_id)
    summaries.record(session, job_id, points)


def _cancel_requested(session: Session, job_id: str) -> bool:
    flag = session.execute(select(Job.cancel_requested).where(Job.id == job_id)).scalar_one()
    return bool(flag)
