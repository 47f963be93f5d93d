"""The fair dispatcher (service.dispatch) on real SQLite and PostgreSQL, with a recording
sender instead of a broker: what a pass sends, in which order, and what it leaves queued.

Time is passed explicitly (``now=``) where staleness matters.
"""

from __future__ import annotations

import threading
from datetime import timedelta

import pytest
from sqlalchemy import delete, select, update

from service import heartbeats, job_claim, logs
from service.db import transaction
from service.dispatch import Candidate, Dispatcher, fair_order
from service.models import Job, Tenant, TenantQuota, WorkerHeartbeat
from service.timeutil import utcnow
from tests.support.jobs import insert_job, job_row, tiny_spec

pytestmark = pytest.mark.integration


class Broker:
    """Records sends; ``fail_after`` makes every send after that many fail."""

    def __init__(self, fail_after: int | None = None) -> None:
        self.sent: list[tuple[str, str]] = []
        self.messages: list[list[str]] = []
        self.fail_after = fail_after
        self.lock = threading.Lock()

    def __call__(self, job_ids: list[str], queue: str) -> bool:
        with self.lock:
            if self.fail_after is not None and len(self.sent) >= self.fail_after:
                return False
            self.messages.append(list(job_ids))
            self.sent.extend((job_id, queue) for job_id in job_ids)
            return True


@pytest.fixture
def db(backend):
    """The module's database emptied of jobs, workers and quotas."""
    with transaction(backend.factory) as session:
        for model in (Job, WorkerHeartbeat, TenantQuota):
            session.execute(delete(model))
    return backend.factory


def workers(factory, *slots: int, now=None) -> None:
    for index, count in enumerate(slots):
        heartbeats.beat(factory, f"host:{index}", now=now, slots=count)


def run(factory, broker, now=None, **policy) -> list[str]:
    with factory() as session:
        return Dispatcher(broker, **policy).run(session, now=now)


def tenant_names(factory, ids):
    with transaction(factory) as session:
        rows = session.execute(
            select(Job.id, Tenant.name).join(Tenant, Tenant.id == Job.tenant_id)
        ).all()
    names = dict(rows)
    return [names[i] for i in ids]


def test_fair_order_is_round_robin_from_the_least_loaded_tenant():
    t0 = utcnow()

    def jobs(tenant, n, queue="interactive"):
        return [
            Candidate(f"{tenant}{i}", tenant, queue, t0 + timedelta(seconds=i)) for i in range(n)
        ]

    heads = {"b": jobs("b", 5), "a": jobs("a", 2), "c": jobs("c", 3, "batch")}
    picks = fair_order(heads, {"b": 3}, {}, 6)
    # a and c have nothing in flight: a first (same age, interactive before batch), then c,
    # then each again; b (3 in flight) only once a has run out and c has reached 3.
    assert [p.id for p in picks] == ["a0", "c0", "a1", "c1", "c2", "b0"]
    assert [p.id for p in fair_order(heads, {}, {"a": 1}, 3)] == ["a0", "b0", "c0"]
    assert fair_order(heads, {"a": 1, "b": 2}, {"a": 1, "b": 2}, 4)[0].id == "c0"


def test_a_pass_fills_the_free_slots_plus_the_margin(db):
    ids = [insert_job(db, tiny_spec(), tenant="b") for _ in range(10)]
    workers(db, 2, 1)
    broker = Broker()
    sent = run(db, broker, margin=1)
    assert sent == ids[:5]  # 3 slots + 1 per worker process
    assert run(db, broker, margin=1) == []  # full: nothing more until a slot frees
    assert all(job_row(db, i).dispatched_at is not None for i in ids[:5])
    assert all(job_row(db, i).dispatched_at is None for i in ids[5:])


def test_a_second_tenant_gets_the_next_free_slot(db):
    backlog = [insert_job(db, tiny_spec(), tenant="b") for _ in range(40)]
    workers(db, 1)
    broker = Broker()
    assert run(db, broker) == backlog[:2]
    job_claim.claim(db, backlog[0], "w", lease_seconds=60, max_attempts=3)
    a_job = insert_job(db, tiny_spec(), tenant="a")
    assert run(db, broker) == []  # one running, one waiting in the broker: full
    with transaction(db) as session:  # the running job ends
        session.execute(update(Job).where(Job.id == backlog[0]).values(status="succeeded"))
    assert run(db, broker) == [a_job]  # not backlog[2]


def test_interactive_jobs_go_before_the_tenants_batch_jobs(db):
    batch = [insert_job(db, tiny_spec(), tenant="b", queue="batch") for _ in range(3)]
    single = insert_job(db, tiny_spec(), tenant="b")
    workers(db, 1)
    broker = Broker()
    assert run(db, broker, margin=0) == [single]
    assert broker.sent == [(single, "interactive")]
    assert batch


def test_max_running_jobs_caps_a_tenant_and_not_the_others(db):
    b_jobs = [insert_job(db, tiny_spec(), tenant="b") for _ in range(5)]
    a_jobs = [insert_job(db, tiny_spec(), tenant="a") for _ in range(2)]
    with transaction(db) as session:
        tenant = session.scalar(select(Tenant.id).where(Tenant.name == "b"))
        session.add(TenantQuota(tenant_id=tenant, max_running_jobs=1))
    workers(db, 8)
    sent = run(db, Broker())
    assert sorted(sent) == sorted([b_jobs[0], *a_jobs])
    # The default applies where the tenant has none; -1 lifts it.
    with transaction(db) as session:
        session.execute(update(TenantQuota).values(max_running_jobs=-1))
    assert run(db, Broker(), max_running_jobs=2) == b_jobs[1:5]


def test_a_failed_send_gives_the_unsent_jobs_back(db):
    ids = [insert_job(db, tiny_spec(), tenant="b") for _ in range(3)]
    workers(db, 3)
    assert run(db, Broker(fail_after=1), margin=0) == ids[:1]
    assert [job_row(db, i).dispatched_at is None for i in ids] == [False, True, True]
    assert run(db, Broker(), margin=0) == ids[1:]


def test_a_message_not_claimed_in_time_is_sent_again(db):
    job_id = insert_job(db, tiny_spec())
    now = utcnow()
    workers(db, 1, now=now)
    assert run(db, Broker(), now=now, margin=0, resend_after_seconds=30) == [job_id]
    soon = now + timedelta(seconds=10)
    workers(db, 1, now=soon)
    assert run(db, Broker(), now=soon, margin=0, resend_after_seconds=30) == []
    late = now + timedelta(seconds=31)
    workers(db, 1, now=late)
    assert run(db, Broker(), now=late, margin=0, resend_after_seconds=30) == [job_id]


def test_workers_that_stopped_reporting_bring_no_capacity(db):
    ids = [insert_job(db, tiny_spec()) for _ in range(4)]
    now = utcnow()
    workers(db, 3, now=now - timedelta(seconds=60))
    assert run(db, Broker(), now=now, margin=1, worker_ttl_seconds=16) == ids[:1]
    heartbeats.forget(db, "host:0")
    with transaction(db) as session:
        assert session.scalar(select(WorkerHeartbeat.name)) is None


def test_concurrent_passes_never_send_a_job_twice(db):
    ids = [insert_job(db, tiny_spec(), tenant=f"t{i % 3}") for i in range(30)]
    workers(db, 12)
    broker = Broker()
    threads = [threading.Thread(target=run, args=(db, broker)) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    sent = [job_id for job_id, _ in broker.sent]
    assert len(sent) == len(set(sent)) == 13
    assert set(sent) <= set(ids)
    assert sorted(tenant_names(db, sent)).count("t0") in (4, 5)  # spread over the tenants


def test_each_send_names_the_request_that_submitted_the_job(db):
    """Whoever's pass sends a job (the API's, another run's at its finish, the reaper's),
    its message names the request that submitted it, never the sender's own."""
    ids = [insert_job(db, tiny_spec(), tenant="b") for _ in range(2)]
    with transaction(db) as session:
        session.execute(update(Job).where(Job.id == ids[0]).values(request_id="submit-0"))
    workers(db, 2)
    seen = []

    def send(job_ids, queue):
        seen.extend((job_id, logs.current("request_id")) for job_id in job_ids)
        return True

    logs.bind(request_id="the-finishing-run")
    try:
        assert run(db, send, margin=0) == ids
        assert logs.current("request_id") == "the-finishing-run"
    finally:
        logs.clear()
    assert seen == [(ids[0], "submit-0"), (ids[1], None)]
