"""One reaper pass: recover the jobs whose run was lost.

- ``cancelling`` with an expired lease → ``cancelled`` (its run is gone);
- ``running`` with an expired lease → ``queued`` for the next dispatch pass, or ``failed``
  with ``attempts_exhausted`` once ``max_attempts`` runs were lost (releases do not count).

Queued jobs whose message was lost are the dispatcher's: a pass sends again a job whose
``dispatched_at`` is older than ``requeue_after_seconds`` (``service.dispatch``), and the
reaper runs a pass after this one.

Every change is a compare-and-set in ``service.lifecycle``, so any number of reapers on
any hosts can run: each job is recovered once. A pass decides on the database's clock
(``service.clock``), read once at its start, never on its own host's: a reaper on a host
whose clock is off takes no live run's job. Kernel code: no Flask, Celery or worker.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from service import lifecycle
from service.clock import read_db_now
from service.db import transaction
from service.models import Job
from service.schemas.names import ACTIVE


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
        outcome = lifecycle.recover_expired(factory, row, max_attempts, now)
        if outcome:
            getattr(result, outcome).append(row.id)
    return result
