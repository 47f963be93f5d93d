"""Fair dispatch: jobs wait ``queued`` in the database; a pass sends as many as there are
free worker slots, choosing across tenants so that no backlog can starve anyone.

The database is the source of truth and the broker only a doorbell (docs/reliability.md):
a submit commits its jobs and asks for a pass; so do the end of every run, a warm
shutdown's release, a PBT exploit, a TPE search's new trials and every reaper pass. A
pass (``Dispatcher.run``):

1. locks the one ``dispatcher`` row with an UPDATE (passes run one at a time; on SQLite
   the write takes the database's write lock, on PostgreSQL the row lock, with a lock
   timeout). A pass that dies releases the lock with its transaction: there is nothing
   to take over, the next pass simply runs;
2. counts the capacity — the slots that live workers report with their heartbeats
   (``worker_heartbeats``, written by each worker's reaper), plus ``margin`` messages per
   worker waiting in the broker so a freed slot starts its next job at once — and what
   is in flight: jobs ``running``/``cancelling``, and jobs sent less than
   ``resend_after_seconds`` ago and not claimed yet;
3. fills the free slots one at a time from the tenant with the fewest jobs in flight
   (below its ``max_running_jobs`` quota), ties going to the oldest waiting job; within a
   tenant, single jobs (queue ``interactive``) before batch jobs, oldest first. With a
   backlog everywhere this is round robin over the tenants; a tenant with nothing running
   gets the next free slot whatever the others have queued;
4. records ``dispatched_at`` (the database's clock, read once per pass: ``service.clock``)
   on the chosen jobs and commits (releasing the lock), then
   sends them by task name; a failed send stops the loop and gives the unsent jobs back
   (``dispatched_at`` cleared) for a later pass.

A job whose message was lost (a crash between the commit and the send, a broker that
dropped it) is sent again once its ``dispatched_at`` is older than
``resend_after_seconds``; a duplicate is harmless, since the claim is a compare-and-set.

Kernel code: no Flask, no Celery. The sender is passed in (``service.queue``).
"""

from __future__ import annotations

import logging
import os
import socket
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import and_, case, func, or_, select, text, update
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session

from service import heartbeats, lifecycle, quotas
from service.clock import db_now, read_db_now
from service.config import Settings
from service.db import dialect_insert
from service.models import DispatcherLock, Job, WorkerHeartbeat
from service.schemas.names import ACTIVE, JobStatus, Queue

log = logging.getLogger(__name__)

# ``send(job_id, queue) -> bool``: publish one training message; False when it failed.
Sender = Callable[[str, str], bool]

LOCK_ROW = 1
# PostgreSQL: how long a pass waits for another's lock, and how long a pass frozen inside
# its transaction (a paused process) may keep it. A pass holds it for a few queries.
LOCK_TIMEOUT_MS = 5000
IDLE_TIMEOUT_MS = 10000


@dataclass(frozen=True)
class Candidate:
    """A queued job a pass may send."""

    id: str
    tenant_id: str
    queue: str
    created_at: datetime


def fair_order(
    heads: Mapping[str, Sequence[Candidate]],
    in_flight: Mapping[str, int],
    caps: Mapping[str, int | None],
    free: int,
) -> list[Candidate]:
    """Choose up to ``free`` jobs: each from the tenant with the fewest jobs in flight
    (counting the ones chosen so far) that is below its cap, ties to the tenant whose next
    job is interactive, then oldest. ``heads`` holds each tenant's jobs in its own order."""
    queues = {tenant: deque(jobs) for tenant, jobs in heads.items()}
    counts = dict(in_flight)
    picks: list[Candidate] = []
    while len(picks) < free:
        best: tuple[Any, ...] | None = None
        for tenant, jobs in queues.items():
            cap = caps.get(tenant)
            if not jobs or (cap is not None and counts.get(tenant, 0) >= cap):
                continue
            head = jobs[0]
            rank = (counts.get(tenant, 0), head.queue != Queue.interactive, head.created_at, tenant)
            if best is None or rank < best:
                best = rank
        if best is None:
            break
        tenant = best[-1]
        picks.append(queues[tenant].popleft())
        counts[tenant] = counts.get(tenant, 0) + 1
    return picks


@dataclass(frozen=True)
class Dispatcher:
    """Runs dispatch passes with one sender and one policy (``from_settings``)."""

    send: Sender
    margin: int = 1
    resend_after_seconds: float = 30.0
    worker_ttl_seconds: float = 16.0
    max_running_jobs: int | None = None  # the default running quota (DELTAFLOW_QUOTA_...)

    @classmethod
    def from_settings(cls, settings: Settings, send: Sender) -> Dispatcher:
        return cls(
            send=send,
            margin=settings.dispatch_margin,
            resend_after_seconds=settings.requeue_after_seconds,
            worker_ttl_seconds=heartbeats.alive_window(settings.reaper_interval_seconds),
            max_running_jobs=settings.quota_max_running_jobs,
        )

    def run(self, session: Session, now: datetime | None = None) -> list[str]:
        """One pass (see the module's doc) in ``session``, which must have no transaction
        open; it commits. Returns the ids sent. Never raises for a database or broker
        outage: the jobs stay queued and a later pass (every reaper pass) sends them.
        ``now`` fixes the time (tests); by default it is the database's clock."""
        try:
            picks, stamp = self._choose(session, now)
        except DBAPIError:
            session.rollback()
            log.warning("dispatch pass failed (database unavailable?)", exc_info=True)
            return []
        sent: list[str] = []
        for job in picks:
            if not self.send(job.id, job.queue):
                break
            sent.append(job.id)
        unsent = [job.id for job in picks[len(sent) :]]
        if unsent:
            try:
                lifecycle.undo_dispatch(session, unsent, stamp)
                session.commit()
            except DBAPIError:
                session.rollback()  # they are sent again once their dispatch is stale
            log.warning("dispatch sent %d of %d job(s); the rest wait", len(sent), len(picks))
        return sent

    # --- the locked part ---------------------------------------------------------------

    def _choose(self, session: Session, now: datetime | None) -> tuple[list[Candidate], datetime]:
        """Lock, count, choose and record the picks (stamped ``now``, which is returned);
        commits, which releases the lock."""
        _lock(session)
        now = now or read_db_now(session)
        stale = now - timedelta(seconds=self.resend_after_seconds)
        slots, workers = session.execute(
            select(
                func.coalesce(func.sum(func.coalesce(WorkerHeartbeat.slots, 1)), 0), func.count()
            ).where(WorkerHeartbeat.seen_at > now - timedelta(seconds=self.worker_ttl_seconds))
        ).one()
        capacity = int(slots) + self.margin * max(int(workers), 1)
        sent_recently = and_(Job.status == JobStatus.queued.value, Job.dispatched_at >= stale)
        in_flight = dict(
            session.execute(
                select(Job.tenant_id, func.count())
                .where(or_(Job.status.in_(ACTIVE), sent_recently))
                .group_by(Job.tenant_id)
            ).all()
        )
        free = capacity - sum(in_flight.values())
        due = and_(
            Job.status == JobStatus.queued.value,
            or_(Job.dispatched_at.is_(None), Job.dispatched_at < stale),
        )
        waiting = session.scalars(select(Job.tenant_id).where(due).group_by(Job.tenant_id)).all()
        if free <= 0 or not waiting:
            session.commit()
            return [], now
        caps = quotas.running_caps(session, waiting, self.max_running_jobs)
        interactive_first = case((Job.queue == Queue.interactive.value, 0), else_=1)
        heads: dict[str, list[Candidate]] = {}
        for tenant in waiting:
            cap = caps.get(tenant)
            room = free if cap is None else min(free, cap - in_flight.get(tenant, 0))
            if room <= 0:
                continue
            rows = session.execute(
                select(Job.id, Job.tenant_id, Job.queue, Job.created_at)
                .where(due, Job.tenant_id == tenant)
                .order_by(interactive_first, Job.created_at, Job.id)
                .limit(room)
            ).all()
            heads[tenant] = [Candidate(*row) for row in rows]
        picks = fair_order(heads, in_flight, caps, free)
        if picks:
            lifecycle.mark_dispatched(session, [job.id for job in picks], now=now)
        session.commit()
        return picks, now


def _lock(session: Session) -> None:
    """Start the pass's transaction by taking the dispatcher row (the first statement is
    the write, as every transaction here: see ``service.lifecycle``)."""
    if session.get_bind().dialect.name == "postgresql":
        session.execute(text(f"SET LOCAL lock_timeout = {LOCK_TIMEOUT_MS}"))
        session.execute(text(f"SET LOCAL idle_in_transaction_session_timeout = {IDLE_TIMEOUT_MS}"))
    values = {"passes": DispatcherLock.passes + 1, "holder": _holder(), "pass_at": db_now()}
    statement = update(DispatcherLock).where(DispatcherLock.id == LOCK_ROW).values(**values)
    if lifecycle.rowcount(session.execute(statement)) == 1:
        return
    # A database made without the migration's row: make it once, then lock it.
    row = {"id": LOCK_ROW, "passes": 0}
    session.execute(dialect_insert(session)(DispatcherLock).values(**row).on_conflict_do_nothing())
    session.execute(statement)


def _holder() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"
