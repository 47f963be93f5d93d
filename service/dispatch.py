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
2. counts (one grouped read) the capacity — the slots that live workers report with
   their heartbeats (``worker_heartbeats``, written by each worker's reaper), plus
   ``margin`` messages per worker waiting in the broker so a freed slot starts its next
   job at once — and what is in flight: jobs ``running``/``cancelling``, and jobs sent
   less than ``resend_after_seconds`` ago and not claimed yet;
3. fills the free slots one at a time from the tenant with the fewest slots in flight
   (below its ``max_running_jobs`` quota, counted in jobs), ties going to the oldest
   waiting job; within a tenant, single jobs (queue ``interactive``) before batch jobs,
   oldest first. With a backlog everywhere this is round robin over the tenants; a tenant
   with nothing running gets the next free slot whatever the others have queued. Tiny
   jobs (``jobs.work``) of one tenant and queue share a slot's message, up to
   ``group_jobs`` of them (``pack``; the worker runs them as ``worker.groups``);
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
from functools import lru_cache
from typing import Any, cast

from sqlalchemy import Integer, String, Table, and_, bindparam, case, func, or_, select, update
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session

from service import heartbeats, job_transitions, logs, quotas
from service.clock import db_now
from service.config import Settings
from service.db import dialect_insert
from service.models import DispatcherLock, Job, TenantQuota, WorkerHeartbeat, new_id
from service.schemas.names import ACTIVE, JobStatus, Queue
from service.timeutil import as_utc

log = logging.getLogger(__name__)

# ``send(job_ids, queue) -> bool``: publish one training message for these jobs (one, or a
# group of tiny ones); False when it failed.
Sender = Callable[[list[str], str], bool]

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
    request_id: str | None = None  # the submitting request's, for the worker's log lines
    work: int | None = None  # estimated at submission (service.budgets.run_work)
    lost: int = 0  # runs of it that were lost (a crash, a lease that ran out)


def fair_order(
    heads: Mapping[str, Sequence[Candidate]],
    in_flight: Mapping[str, int],
    caps: Mapping[str, int | None],
    free: int,
    slots: Mapping[str, int] | None = None,
    group_jobs: int = 1,
    group_work: int = 0,
) -> list[Candidate]:
    """Choose up to ``free`` jobs: each from the tenant with the fewest in flight (counting
    the ones chosen so far) that is below its cap, ties to the tenant whose next job is
    interactive, then oldest. ``heads`` holds each tenant's jobs in its own order. Caps
    count jobs (``in_flight``); the turns count worker slots if ``slots`` (per tenant) is
    given — a group of tiny jobs is one — so a tenant of tiny jobs is not passed over for
    holding many jobs in few slots. With ``group_jobs`` > 1, a tiny pick that ``pack``
    will put in the tenant's open group takes no turn of its own either: the group's
    first pick took it."""
    queues = {tenant: deque(jobs) for tenant, jobs in heads.items()}
    counts = dict(in_flight)
    turns = dict(in_flight if slots is None else slots)
    room: dict[tuple[str, str], int] = {}  # places left in each (tenant, queue)'s open group
    picks: list[Candidate] = []
    while len(picks) < free:
        best: tuple[Any, ...] | None = None
        for tenant, jobs in queues.items():
            cap = caps.get(tenant)
            if not jobs or (cap is not None and counts.get(tenant, 0) >= cap):
                continue
            head = jobs[0]
            rank = (turns.get(tenant, 0), head.queue != Queue.interactive, head.created_at, tenant)
            if best is None or rank < best:
                best = rank
        if best is None:
            break
        tenant = best[-1]
        job = queues[tenant].popleft()
        picks.append(job)
        counts[tenant] = counts.get(tenant, 0) + 1
        group = (tenant, job.queue)
        tiny = _tiny(job, group_jobs, group_work)
        if tiny and room.get(group, 0) > 0:
            room[group] -= 1  # joins the group its tenant opened: the same turn
            continue
        turns[tenant] = turns.get(tenant, 0) + 1
        if tiny:
            room[group] = group_jobs - 1
    return picks


def _tiny(job: Candidate, group_jobs: int, group_work: int) -> bool:
    """A job that may share a message (``pack``)."""
    return group_jobs > 1 and not job.lost and job.work is not None and job.work <= group_work


def pack(
    picks: Sequence[Candidate], slots: int, group_jobs: int, group_work: int
) -> list[list[Candidate]]:
    """The messages of a pass: ``picks`` (in fair order) into at most ``slots`` messages,
    each one job or up to ``group_jobs`` tiny jobs (work at most ``group_work``) of one
    tenant and queue — a group takes one worker slot and is claimed, run and finished
    together, so a tiny job's bookkeeping is shared. A job that already lost a run goes
    alone: had it crashed its worker (a poison pill), it would take its group's other
    jobs down with it again, and their attempts toward the cap. Picks that fit no
    message wait."""
    messages: list[list[Candidate]] = []
    open_groups: dict[tuple[str, str], list[Candidate]] = {}
    for job in picks:
        tiny = _tiny(job, group_jobs, group_work)
        group = open_groups.get((job.tenant_id, job.queue)) if tiny else None
        if group is not None and len(group) < group_jobs:
            group.append(job)
            continue
        if len(messages) >= slots:
            continue
        messages.append([job])
        if tiny:
            open_groups[(job.tenant_id, job.queue)] = messages[-1]
    return messages


@dataclass(frozen=True)
class Chosen:
    """What a pass picked, as the messages to send, and the time it stamped on them
    (``dispatched_at``)."""

    messages: list[list[Candidate]]
    stamp: datetime

    @property
    def picks(self) -> list[Candidate]:
        return [job for message in self.messages for job in message]


@dataclass(frozen=True)
class Dispatcher:
    """Runs dispatch passes with one sender and one policy (``from_settings``)."""

    send: Sender
    margin: int = 1
    resend_after_seconds: float = 30.0
    worker_ttl_seconds: float = 16.0
    max_running_jobs: int | None = None  # the default running quota (DELTAFLOW_QUOTA_...)
    group_jobs: int = 1  # tiny jobs per message (``pack``); 1 = each job alone
    group_work: int = 0

    @classmethod
    def from_settings(cls, settings: Settings, send: Sender) -> Dispatcher:
        return cls(
            send=send,
            margin=settings.dispatch_margin,
            resend_after_seconds=settings.requeue_after_seconds,
            worker_ttl_seconds=heartbeats.alive_window(settings.reaper_interval_seconds),
            max_running_jobs=settings.quota_max_running_jobs,
            group_jobs=settings.group_jobs,
            group_work=settings.group_work,
        )

    def run(self, session: Session, now: datetime | None = None) -> list[str]:
        """One pass (see the module's doc) in ``session``, which must have no transaction
        open; it commits. Returns the ids sent. Never raises for a database or broker
        outage: the jobs stay queued and a later pass (every reaper pass) sends them.
        ``now`` fixes the time (tests); by default it is the database's clock."""
        try:
            chosen = self.choose(session, now)
            session.commit()  # releases the lock
        except DBAPIError:
            session.rollback()
            log.warning("dispatch pass failed (database unavailable?)", exc_info=True)
            return []
        return self.send_chosen(session, chosen)

    def send_chosen(self, session: Session, chosen: Chosen) -> list[str]:
        """Send what a committed ``choose`` picked, in order; a failed send stops the loop
        and gives the unsent jobs back (``dispatched_at`` cleared, in ``session``, which
        is only used then). Returns the ids sent; never raises."""
        sent: list[str] = []
        for message in chosen.messages:
            # Sent as part of the request that submitted it, whoever's pass this is.
            with logs.bound(request_id=message[0].request_id):
                if not self.send([job.id for job in message], message[0].queue):
                    break
            sent.extend(job.id for job in message)
        unsent = [job.id for job in chosen.picks[len(sent) :]]
        if unsent:
            try:
                job_transitions.undo_dispatch(session, unsent, chosen.stamp)
                session.commit()
            except DBAPIError:
                session.rollback()  # they are sent again once their dispatch is stale
            log.warning(
                "dispatch sent %d of %d job(s); the rest wait", len(sent), len(chosen.picks)
            )
        return sent

    # --- the locked part ---------------------------------------------------------------

    def choose(self, session: Session, now: datetime | None = None) -> Chosen:
        """Lock, count, choose and record the picks (stamped ``now``) in the caller's
        transaction; its commit releases the lock, and only then may ``send_chosen`` send
        them. A run's finish calls it inside its own transaction (one commit for both:
        ``job_finish.complete``). Few statements: a pass runs after every job, and a tiny
        job is about a dozen statements of its own."""
        stamp = _lock(session)  # the database's clock, unless the caller fixed the time
        now = now or stamp
        stale = now - timedelta(seconds=self.resend_after_seconds)
        alive_after = now - timedelta(seconds=self.worker_ttl_seconds)
        read_tenants, read_heads = _reads()  # built once: a pass runs after every job
        # Per tenant with unfinished jobs: in flight, waiting, and its own running quota; on
        # every row, the live workers' slots and their number (no tenant row: nothing to do).
        db = session.connection()  # Core reads: no ORM execution path per statement
        tenants = db.execute(read_tenants, {"stale": stale, "alive_after": alive_after}).all()
        if not tenants:
            return Chosen([], now)
        capacity = int(tenants[0].slots) + self.margin * max(int(tenants[0].workers), 1)
        in_flight = {row.tenant_id: int(row.flying or 0) for row in tenants}
        caps = {row.tenant_id: quotas.effective(row.own, self.max_running_jobs) for row in tenants}
        # Slots in use: a group of tiny jobs (one message) takes one, however many it holds.
        slots = {row.tenant_id: int(row.busy or 0) for row in tenants}
        free = capacity - sum(slots.values())
        wanted = free * max(self.group_jobs, 1)  # jobs the free slots may take
        room = {
            row.tenant_id: _room(wanted, caps[row.tenant_id], in_flight[row.tenant_id])
            for row in tenants
            if row.waiting
        }
        eligible = [tenant for tenant, places in room.items() if places > 0]
        if free <= 0 or not eligible:
            return Chosen([], now)
        # Each eligible tenant's next jobs, in its own order, in one statement.
        heads: dict[str, list[Candidate]] = {tenant: [] for tenant in eligible}
        for row in db.execute(read_heads, {"stale": stale, "eligible": eligible, "free": wanted}):
            if len(heads[row.tenant_id]) < room[row.tenant_id]:
                heads[row.tenant_id].append(Candidate(*row))
        picks = fair_order(heads, in_flight, caps, wanted, slots, self.group_jobs, self.group_work)
        messages = pack(picks, free, self.group_jobs, self.group_work)
        singles = [message[0].id for message in messages if len(message) == 1]
        if singles:
            job_transitions.mark_dispatched(session, singles, now=now)
        for group in (message for message in messages if len(message) > 1):
            # A key of its own: never a job's id, which a single's slot is counted by.
            key = new_id()
            job_transitions.mark_dispatched(session, [job.id for job in group], now=now, group=key)
        return Chosen(messages, now)


def _lock(session: Session) -> datetime:
    """Take the dispatcher row: the first write of a pass's own transaction (as in every
    transaction here: see ``service.job_writes``), or the last of a run's finish, which
    already holds its job's row (``job_finish.complete``). Returns the database's clock."""
    set_timeouts, take = _lock_statements()
    if session.get_bind().dialect.name == "postgresql":
        session.execute(set_timeouts)
    holder = {"lock_holder": _holder()}
    stamp = session.execute(take, holder).scalar_one_or_none()
    if stamp is None:
        # A database made without the migration's row: make it once, then lock it.
        row = {"id": LOCK_ROW, "passes": 0}
        insert = dialect_insert(session)(DispatcherLock).values(**row).on_conflict_do_nothing()
        session.execute(insert)
        stamp = session.execute(take, holder).scalar_one()
    value = as_utc(stamp)
    assert value is not None
    return value


@lru_cache(maxsize=1)
def _reads() -> tuple[Any, Any]:
    """A pass's two reads, built once with bound parameters (``stale``, ``alive_after``;
    then ``eligible`` and ``free``): building them anew cost more CPU per tiny job than
    anything else of the pass."""
    stale = bindparam("stale", type_=Job.dispatched_at.type)
    alive_after = bindparam("alive_after", type_=WorkerHeartbeat.seen_at.type)
    alive = WorkerHeartbeat.seen_at > alive_after
    slots = select(func.coalesce(func.sum(func.coalesce(WorkerHeartbeat.slots, 1)), 0))
    workers = select(func.count()).select_from(WorkerHeartbeat)
    queued = Job.status == JobStatus.queued.value
    flying = or_(Job.status.in_(ACTIVE), and_(queued, Job.dispatched_at >= stale))
    due = and_(queued, or_(Job.dispatched_at.is_(None), Job.dispatched_at < stale))
    slot = func.coalesce(Job.dispatch_group, Job.id)  # a group of tiny jobs is one slot
    tenants = (
        select(
            Job.tenant_id,
            func.sum(case((flying, 1), else_=0)).label("flying"),
            func.count(case((flying, slot)).distinct()).label("busy"),
            func.sum(case((due, 1), else_=0)).label("waiting"),
            TenantQuota.max_running_jobs.label("own"),
            slots.where(alive).scalar_subquery().label("slots"),
            workers.where(alive).scalar_subquery().label("workers"),
        )
        .outerjoin(TenantQuota, TenantQuota.tenant_id == Job.tenant_id)
        .where(Job.status.in_([JobStatus.queued.value, *ACTIVE]))
        .group_by(Job.tenant_id, TenantQuota.max_running_jobs)
    )
    interactive_first = case((Job.queue == Queue.interactive.value, 0), else_=1)
    rank = (
        func.row_number()
        .over(partition_by=Job.tenant_id, order_by=(interactive_first, Job.created_at, Job.id))
        .label("rank")
    )
    ranked = (
        select(
            Job.id,
            Job.tenant_id,
            Job.queue,
            Job.created_at,
            Job.request_id,
            Job.work,
            (Job.attempt - Job.releases).label("lost"),
            rank,
        )
        .where(
            due, Job.tenant_id.in_(bindparam("eligible", type_=Job.tenant_id.type, expanding=True))
        )
        .subquery()
    )
    heads = (
        select(
            ranked.c.id,
            ranked.c.tenant_id,
            ranked.c.queue,
            ranked.c.created_at,
            ranked.c.request_id,
            ranked.c.work,
            ranked.c.lost,
        )
        .where(ranked.c.rank <= bindparam("free", type_=Integer()))
        .order_by(ranked.c.tenant_id, ranked.c.rank)
    )
    return tenants, heads


@lru_cache(maxsize=1)
def _lock_statements() -> tuple[Any, Any]:
    """The lock's statements, built once: PostgreSQL's timeouts for this transaction, and
    the UPDATE of the dispatcher row (``lock_holder`` bound) returning the database's clock."""
    set_timeouts = select(
        func.set_config("lock_timeout", str(LOCK_TIMEOUT_MS), True),
        func.set_config("idle_in_transaction_session_timeout", str(IDLE_TIMEOUT_MS), True),
    )
    take = (
        update(cast(Table, DispatcherLock.__table__))  # Core: no ORM bulk-update path
        .where(DispatcherLock.id == LOCK_ROW)
        .values(
            passes=DispatcherLock.passes + 1,
            holder=bindparam("lock_holder", type_=String()),
            pass_at=db_now(),
        )
        .returning(DispatcherLock.pass_at)
    )
    return set_timeouts, take


def _room(free: int, cap: int | None, in_flight: int) -> int:
    """How many of a tenant's jobs a pass may send: the free places, under its cap."""
    return free if cap is None else min(free, cap - in_flight)


def _holder() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"
