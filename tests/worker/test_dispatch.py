"""The fair dispatcher (service.dispatch) on real SQLite and PostgreSQL, with a recording
sender instead of a broker: what a pass sends, in which order, and what it leaves queued.

Time is passed explicitly (``now=``) where staleness matters.
"""

from __future__ import annotations

import random
import threading
from datetime import timedelta

import pytest
from sqlalchemy import delete, select, update

from service import heartbeats, job_claim, job_finish, job_transitions, logs
from service.db import transaction
from service.dispatch import Candidate, Dispatcher, fair_order, pack
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


# --- tiny jobs share messages (service.dispatch.pack) ------------------------------------

TINY = 1_000  # estimated work (multiply-adds) under GROUP_WORK: a tiny job
GROUP_WORK = 2_000
BIG = GROUP_WORK + 1


def job(name: str, tenant: str = "a", queue: str = "interactive", work: int | None = TINY, lost=0):
    return Candidate(name, tenant, queue, utcnow(), work=work, lost=lost)


def ids(messages) -> list[list[str]]:
    return [[job.id for job in message] for message in messages]


def test_pack_groups_the_tiny_jobs_of_one_tenant_and_queue():
    picks = [
        job("a0"),
        job("b0", tenant="b"),
        job("a1"),
        job("q0", queue="batch"),
        job("b1", tenant="b"),
        job("a2"),
        job("q1", queue="batch"),
    ]
    messages = pack(picks, slots=10, group_jobs=8, group_work=GROUP_WORK)
    # In the order of each message's first pick; each job where the fair order put it.
    assert ids(messages) == [["a0", "a1", "a2"], ["b0", "b1"], ["q0", "q1"]]


def test_pack_puts_at_most_group_jobs_in_a_message():
    picks = [job(f"a{i}") for i in range(10)]
    messages = pack(picks, slots=10, group_jobs=4, group_work=GROUP_WORK)
    assert ids(messages) == [
        ["a0", "a1", "a2", "a3"],
        ["a4", "a5", "a6", "a7"],
        ["a8", "a9"],
    ]


def test_pack_sends_a_job_over_the_work_limit_or_of_unknown_work_alone():
    picks = [
        job("a0"),
        job("big", work=BIG),
        job("a1", work=GROUP_WORK),  # at the limit: still tiny
        job("unknown", work=None),  # submitted before work was stored
        job("a2"),
        job("big2", work=BIG),
    ]
    messages = pack(picks, slots=10, group_jobs=8, group_work=GROUP_WORK)
    assert ids(messages) == [["a0", "a1", "a2"], ["big"], ["unknown"], ["big2"]]


def test_pack_sends_a_tiny_job_that_lost_a_run_alone():
    """A job whose run was lost (a crash: maybe its own doing) never takes a group down."""
    picks = [job("a0"), job("crashed", lost=1), job("a1"), job("twice", lost=2)]
    messages = pack(picks, slots=10, group_jobs=8, group_work=GROUP_WORK)
    assert ids(messages) == [["a0", "a1"], ["crashed"], ["twice"]]


def test_pack_never_sends_more_messages_than_free_slots():
    picks = [job(f"a{i}") for i in range(30)]
    messages = pack(picks, slots=2, group_jobs=8, group_work=GROUP_WORK)
    assert ids(messages) == [[f"a{i}" for i in range(8)], [f"a{i}" for i in range(8, 16)]]
    big = [job(f"big{i}", work=BIG) for i in range(3)]
    assert ids(pack(big, slots=2, group_jobs=8, group_work=GROUP_WORK)) == [["big0"], ["big1"]]
    assert pack(big, slots=0, group_jobs=8, group_work=GROUP_WORK) == []
    # A full pass still fills its open groups: the tiny jobs join the slot already taken,
    # the big job waits.
    mixed = [job("a0"), job("big", work=BIG), job("a1")]
    assert ids(pack(mixed, slots=1, group_jobs=8, group_work=GROUP_WORK)) == [["a0", "a1"]]


def test_pack_with_group_jobs_1_sends_every_job_alone():
    picks = [job(f"a{i}") for i in range(5)]
    messages = pack(picks, slots=3, group_jobs=1, group_work=GROUP_WORK)
    assert ids(messages) == [["a0"], ["a1"], ["a2"]]


def test_pack_keeps_the_fair_order_across_tenants():
    t0 = utcnow()
    heads = {
        tenant: [
            Candidate(f"{tenant}{i}", tenant, "interactive", t0 + timedelta(seconds=i), work=TINY)
            for i in range(6)
        ]
        for tenant in ("a", "b", "c")
    }
    picks = fair_order(heads, {"a": 2}, {}, 12)  # b and c first: a has jobs in flight
    messages = pack(picks, slots=2, group_jobs=3, group_work=GROUP_WORK)
    # The two free slots go to the tenants the fair order puts first, never to a.
    assert ids(messages) == [["b0", "b1", "b2"], ["c0", "c1", "c2"]]


def test_pack_invariants_on_random_picks():
    """Whatever the picks: one tenant and queue per message, at most ``group_jobs``, a
    non-tiny job alone, at most ``slots`` messages, no job twice, the picks' order kept
    within each message; a pick left out means the slots were all taken."""
    rng = random.Random(7)
    for _ in range(300):
        picks = [
            job(
                f"j{i}",
                tenant=rng.choice("abc"),
                queue=rng.choice(["interactive", "batch"]),
                work=rng.choice([None, TINY, GROUP_WORK, BIG]),
                lost=rng.choice([0, 0, 0, 1]),
            )
            for i in range(rng.randrange(0, 40))
        ]
        slots, group_jobs = rng.randrange(0, 6), rng.randrange(1, 6)
        messages = pack(picks, slots, group_jobs, GROUP_WORK)
        order = {pick.id: index for index, pick in enumerate(picks)}
        packed = [pick.id for message in messages for pick in message]
        assert len(packed) == len(set(packed))
        assert len(messages) <= slots
        for message in messages:
            assert 1 <= len(message) <= group_jobs
            assert len({(pick.tenant_id, pick.queue) for pick in message}) == 1
            if len(message) > 1:
                assert all(p.work is not None and p.work <= GROUP_WORK for p in message)
                assert not any(p.lost for p in message)
            assert [order[p.id] for p in message] == sorted(order[p.id] for p in message)
        if len(packed) < len(picks):
            assert len(messages) == slots
        # Messages come in the order of their first pick (the fair order).
        firsts = [order[message[0].id] for message in messages]
        assert firsts == sorted(firsts)


def tiny_jobs(factory, n: int, tenant: str = "b", **kwargs) -> list[str]:
    return [insert_job(factory, tiny_spec(), tenant=tenant, work=TINY, **kwargs) for _ in range(n)]


def groups(factory, job_ids) -> list[str | None]:
    return [job_row(factory, job_id).dispatch_group for job_id in job_ids]


def finish(factory, job_ids) -> None:
    with transaction(factory) as session:
        session.execute(update(Job).where(Job.id.in_(job_ids)).values(status="succeeded"))


GROUPED = {"group_jobs": 8, "group_work": GROUP_WORK}


def test_a_pass_sends_tiny_jobs_in_groups_and_stores_each_group(db):
    ids_ = tiny_jobs(db, 20)
    workers(db, 1)
    broker = Broker()
    sent = run(db, broker, margin=1, **GROUPED)
    # One worker slot plus the margin: two messages, however many jobs they hold.
    assert broker.messages == [ids_[:8], ids_[8:16]]
    assert sent == ids_[:16]
    assert {queue for _, queue in broker.sent} == {"interactive"}
    # Each job names its message: a key per group, never a job's id (a single's slot).
    keys = groups(db, ids_[:16])
    assert keys == [keys[0]] * 8 + [keys[8]] * 8
    assert keys[0] != keys[8]
    assert not set(keys) & set(ids_)
    assert groups(db, ids_[16:]) == [None] * 4
    assert all(job_row(db, i).dispatched_at is None for i in ids_[16:])


def test_a_group_takes_one_slot_until_all_its_jobs_end(db):
    ids_ = tiny_jobs(db, 20)
    workers(db, 1)
    broker = Broker()
    run(db, broker, margin=1, **GROUPED)
    assert run(db, broker, margin=1, **GROUPED) == []  # two slots, both taken
    # The first group is claimed and runs: still one slot (16 jobs in flight, 2 slots).
    job_claim.claim_many(db, ids_[:8], "w", lease_seconds=60, max_attempts=3)
    assert run(db, broker, margin=1, **GROUPED) == []
    finish(db, ids_[:7])  # all but one of its jobs ended: the slot is still taken
    assert run(db, broker, margin=1, **GROUPED) == []
    finish(db, ids_[7:8])  # the whole group ended: one slot is free, for one message
    assert run(db, broker, margin=1, **GROUPED) == ids_[16:]
    assert broker.messages[-1] == ids_[16:]
    assert len(set(groups(db, ids_[16:]))) == 1
    assert groups(db, ids_[16:])[0] is not None


def test_a_pass_sends_a_lone_tiny_job_as_a_single(db):
    (alone,) = tiny_jobs(db, 1)
    workers(db, 1)
    broker = Broker()
    assert run(db, broker, margin=0, **GROUPED) == [alone]
    assert broker.messages == [[alone]]
    assert groups(db, [alone]) == [None]  # a single counts as itself


def test_big_jobs_and_jobs_of_unknown_work_go_alone_beside_the_groups(db):
    big = insert_job(db, tiny_spec(), tenant="b", work=BIG)
    unknown = insert_job(db, tiny_spec(), tenant="b")
    tiny = tiny_jobs(db, 3)
    workers(db, 4)
    broker = Broker()
    assert sorted(run(db, broker, margin=0, **GROUPED)) == sorted([big, unknown, *tiny])
    assert sorted(broker.messages, key=len) == [[big], [unknown], tiny]
    keys = groups(db, [big, unknown, *tiny])
    assert keys[:2] == [None, None]
    assert keys[2] is not None
    assert keys[2:] == [keys[2]] * 3


def test_max_running_jobs_counts_jobs_inside_groups(db):
    b_jobs = tiny_jobs(db, 10, tenant="b")
    a_jobs = tiny_jobs(db, 5, tenant="a")
    with transaction(db) as session:
        tenant = session.scalar(select(Tenant.id).where(Tenant.name == "b"))
        session.add(TenantQuota(tenant_id=tenant, max_running_jobs=3))
    workers(db, 8)
    broker = Broker()
    run(db, broker, margin=0, **GROUPED)
    # b's cap is three jobs, not three messages; a (no cap) goes in one message.
    assert sorted(broker.messages) == sorted([b_jobs[:3], a_jobs])
    assert run(db, broker, margin=0, **GROUPED) == []  # b at its cap, a has nothing left
    finish(db, b_jobs[:1])  # one of b's three ended: one more of b's may go
    assert run(db, broker, margin=0, **GROUPED) == b_jobs[3:4]
    # The default cap applies where a tenant has none, inside a group too.
    c_jobs = tiny_jobs(db, 6, tenant="c")
    assert run(db, broker, margin=0, max_running_jobs=2, **GROUPED) == c_jobs[:2]
    assert broker.messages[-1] == c_jobs[:2]


def test_turns_count_slots_so_a_tenant_of_tiny_jobs_is_not_passed_over(db):
    """Tenant a runs one group of 8 tiny jobs (one slot), b two big jobs (two slots); both
    have more waiting. The next free slot is a's turn: fewer slots, though more jobs."""
    a_jobs = tiny_jobs(db, 16, tenant="a")
    b_jobs = [insert_job(db, tiny_spec(), tenant="b", work=BIG) for _ in range(4)]
    workers(db, 4)  # three slots taken, one free
    broker = Broker()
    with transaction(db) as session:  # in flight: a's group (sent together), b's two
        job_transitions.mark_dispatched(session, a_jobs[:8], group="a-group")
        job_transitions.mark_dispatched(session, b_jobs[:2])
    assert run(db, broker, margin=0, **GROUPED) == a_jobs[8:16]
    assert broker.messages == [a_jobs[8:16]]


def test_group_jobs_1_sends_every_job_alone_as_before(db):
    ids_ = tiny_jobs(db, 10)
    workers(db, 2, 1)
    broker = Broker()
    assert run(db, broker, margin=1, group_jobs=1, group_work=GROUP_WORK) == ids_[:5]
    assert broker.messages == [[i] for i in ids_[:5]]
    assert groups(db, ids_) == [None] * 10
    assert run(db, broker, margin=1, group_jobs=1, group_work=GROUP_WORK) == []


def test_a_failed_send_gives_the_whole_group_back(db):
    ids_ = tiny_jobs(db, 12)
    workers(db, 1)
    assert run(db, Broker(fail_after=8), margin=1, **GROUPED) == ids_[:8]
    assert [job_row(db, i).dispatched_at is None for i in ids_] == [False] * 8 + [True] * 4
    # The given-back jobs are not in flight: the next pass sends them, in one message.
    broker = Broker()
    assert run(db, broker, margin=1, **GROUPED) == ids_[8:]
    assert broker.messages == [ids_[8:]]


def test_a_group_not_claimed_in_time_is_sent_again(db):
    ids_ = tiny_jobs(db, 3)
    now = utcnow()
    workers(db, 1, now=now)
    assert run(db, Broker(), now=now, margin=0, resend_after_seconds=30, **GROUPED) == ids_
    late = now + timedelta(seconds=31)
    workers(db, 1, now=late)
    broker = Broker()
    assert run(db, broker, now=late, margin=0, resend_after_seconds=30, **GROUPED) == ids_
    assert broker.messages == [ids_]


def test_a_job_whose_run_was_lost_goes_alone_and_a_released_one_in_a_group(db):
    crashed, released, *others = tiny_jobs(db, 4)
    for job_id in (crashed, released):
        claimed = job_claim.claim(db, job_id, "w", lease_seconds=60, max_attempts=3)
        assert claimed is not None
    # The crashed run's lease ran out and the reaper queued the job again (a strike);
    # the other was handed back at a warm shutdown (no strike).
    with transaction(db) as session:
        session.execute(
            update(Job).where(Job.id == crashed).values(status="queued", lease_owner=None)
        )
    job_finish.release(db, released, 1)
    workers(db, 4)
    broker = Broker()
    run(db, broker, margin=0, **GROUPED)
    assert sorted(broker.messages, key=len) == [[crashed], [released, *others]]
    crashed_key, released_key = groups(db, [crashed, released])
    assert crashed_key is None
    assert released_key is not None
