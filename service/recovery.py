"""One reaper pass: recover the jobs whose run was lost.

- ``cancelling`` with an expired lease → ``cancelled`` (its run is gone);
- ``running`` with an expired lease → ``queued`` for the next dispatch pass, or ``failed``
  with ``attempts_exhausted`` once ``max_attempts`` runs were lost (releases do not count).

Queued jobs whose message was lost are the dispatcher's: a pass sends again a job whose
``dispatched_at`` is older than ``requeue_after_seconds`` (``service.dispatch``), and the
reaper runs a pass after this one.

Every change is a compare-and-set (``recover_expired``), so any number of reapers on
any hosts can run: each job is recovered once. A pass decides on the database's clock
(``service.clock``), read once at its start, never on its own host's: a reaper on a host
whose clock is off takes no live run's job. Kernel code: no Flask, Celery or worker.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import and_, select
from sqlalchemy.orm import Session, sessionmaker

from service import counters
from service.clock import read_db_now
from service.db import transaction
from service.job_writes import SessionFactory, record_ended, write_job
from service.models import Job
from service.schemas.names import ACTIVE, JobStatus


@dataclass
class Recovery:
    """What one reaper pass did."""

    requeued: list[str] = field(default_factory=list)
    exhausted: list[str] = field(default_factory=list)
    cancelled: list[str] = field(default_factory=list)

    @property
    def changed(self) -> bool:
        return bool(self.requeued or self.exhausted or self.cancelled)


def recover(
    factory: sessionmaker[Session],
    *,
    max_attempts: int,
    now: datetime | None = None,
    limit: int = 500,
) -> Recovery:
    """One pass over expired leases.

    ``now`` fixes the time (tests); by default it is the database's clock.
    """
    result = Recovery()
    with transaction(factory) as session:
        now = now or read_db_now(session)
        expired = session.execute(
            select(Job.id, Job.status, Job.attempt, Job.releases, Job.queue)
            .where(Job.status.in_(ACTIVE), Job.lease_expires_at < now)
            .limit(limit)
        ).all()
    for row in expired:
        outcome = recover_expired(factory, row, max_attempts, now)
        if outcome:
            getattr(result, outcome).append(row.id)
    return result


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
        won = write_job(session, still_expired, **values, version=Job.version + 1)
        if won:
            labels = {"outcome": outcome}
            counters.add(session, counters.RECOVERED, labels=labels, shard_key=row.id)
            if outcome != "requeued":
                record_ended(session, row.id, JobStatus(values["status"]))
    return outcome if won else ""
