"""One reaper pass: recover the jobs whose run or message was lost.

- ``cancelling`` with an expired lease → ``cancelled`` (its run is gone);
- ``running`` with an expired lease → ``queued`` and dispatched again, or ``failed`` with
  ``attempts_exhausted`` once ``max_attempts`` runs were lost (releases do not count);
- ``queued`` and not dispatched for a while → dispatched again. The wait doubles with
  the job's age (at least ``requeue_after_seconds``), so a long backlog is not flooded
  with duplicates; a duplicate is harmless anyway (the claim is a compare-and-set).

Every change is a compare-and-set in ``service.lifecycle``, so any number of reapers on
any hosts can run: each job is recovered once. A pass decides on the database's clock
(``service.clock``), read once at its start, never on its own host's: a reaper on a host
whose clock is off takes no live run's job. The caller sends what ``dispatch`` lists
(``worker.reaper`` with ``service.dispatch``). Kernel code: no Flask, Celery or worker.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import or_, select
from sqlalchemy.orm import Session, sessionmaker

from service import lifecycle
from service.clock import read_db_now
from service.db import transaction
from service.models import Job
from service.schemas.names import ACTIVE, JobStatus
from service.timeutil import as_utc


@dataclass
class Recovery:
    """What one reaper pass did. ``dispatch`` lists (job_id, queue) the caller must send."""

    dispatch: list[tuple[str, str]] = field(default_factory=list)
    requeued: list[str] = field(default_factory=list)
    exhausted: list[str] = field(default_factory=list)
    cancelled: list[str] = field(default_factory=list)

    @property
    def changed(self) -> bool:
        return bool(self.requeued or self.exhausted or self.cancelled or self.dispatch)


def recover(
    factory: sessionmaker[Session],
    *,
    max_attempts: int,
    requeue_after_seconds: float,
    now: datetime | None = None,
    limit: int = 500,
) -> Recovery:
    """One pass over expired leases and queued jobs whose message may be lost.

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
        outcome = lifecycle.recover_expired(factory, row, max_attempts, now)
        if outcome:
            getattr(result, outcome).append(row.id)
        if outcome == "requeued":
            result.dispatch.append((row.id, row.queue))
    for queued in waiting:
        if _redispatch_due(queued, requeue_after_seconds, now) and lifecycle.take_dispatch(
            factory, queued.id, queued.dispatched_at, now
        ):
            result.dispatch.append((queued.id, queued.queue))
    return result


def _redispatch_due(row: Any, requeue_after_seconds: float, now: datetime) -> bool:
    created = as_utc(row.created_at) or now  # NOT NULL in the schema
    last = as_utc(row.dispatched_at) or created
    wait = max(requeue_after_seconds, (last - created).total_seconds())
    return (now - last).total_seconds() >= wait
