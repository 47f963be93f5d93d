"""The harness itself: the throwaway servers really go down and come back, a process
group really dies, and the audit really sees a missing epoch."""

from __future__ import annotations

import sys

import numpy as np
import psycopg
import pytest

from service.models import CurvePoint, Job, Tenant

from .harness.integrity import Reference, Tally, audit_jobs
from .harness.procs import WorkerProcess, pid_alive
from .harness.waiting import WaitTimeout, wait_until

pytestmark = pytest.mark.faults


def test_postgres_stops_and_comes_back(throwaway_postgres):
    url = throwaway_postgres.create_database("harness_roundtrip")
    assert url.endswith("/harness_roundtrip")
    throwaway_postgres.stop()
    assert not throwaway_postgres.accepts_connections()
    throwaway_postgres.start()
    port = throwaway_postgres.port
    conninfo = f"host=127.0.0.1 port={port} user=postgres dbname=harness_roundtrip"
    with psycopg.connect(conninfo) as conn:
        assert conn.execute("SELECT 1").fetchone() == (1,)


def test_redis_restart_loses_messages(throwaway_redis):
    with throwaway_redis.client() as client:
        client.lpush("harness", "message")
    throwaway_redis.restart()
    with throwaway_redis.client() as client:
        assert client.llen("harness") == 0


def test_kill_group_kills_every_child(tmp_path):
    # A parent with two children, like a prefork pool.
    script = (
        "import os, time\n"
        "for _ in range(2):\n"
        "    if os.fork() == 0:\n"
        "        time.sleep(600)\n"
        "print(' ready.', flush=True)\n"
        "time.sleep(600)\n"
    )
    proc = WorkerProcess("tree", [sys.executable, "-c", script], {}, tmp_path).start()
    proc.wait_ready(pool_size=2, timeout=30)
    children = proc.pool_children()
    assert len(children) == 2
    proc.kill_group()
    assert not proc.alive
    assert not any(pid_alive(pid) for pid in children)


def test_wait_until_reports_what_it_waited_for():
    with pytest.raises(WaitTimeout, match="the impossible"):
        wait_until(lambda: False, 0.2, "the impossible", describe=lambda: "still false")


def test_audit_finds_missing_and_wrong_epochs(embedded_stack):
    stack = embedded_stack
    with stack.factory.begin() as session:
        tenant = Tenant(name="harness")
        session.add(tenant)
        session.flush()
        job = Job(tenant_id=tenant.id, name="gappy", spec={}, epochs=4, status="failed")
        session.add(job)
        session.flush()
        for epoch, loss in [(1, 0.9), (2, 0.8), (4, 0.55)]:
            session.add(CurvePoint(job_id=job.id, epoch=epoch, train_loss=loss, seconds=0.0))
        job_id = job.id
    reference = Reference(train_loss={1: 0.9, 2: 0.8, 3: 0.7, 4: 0.6}, weights={"W0": np.zeros(1)})
    (audit,) = audit_jobs(stack.factory, {"gappy": reference})
    assert audit.missing_epochs == [3]
    assert audit.wrong_points == [4]
    tally = Tally.from_audits("harness", stack.backend, [job_id, "never-stored"], [audit])
    assert (tally.submitted, tally.failed, tally.lost, tally.missing_epochs) == (2, 1, 1, 1)


def test_audit_wants_a_succeeded_curve_to_end_where_the_reference_ends(embedded_stack):
    stack = embedded_stack
    with stack.factory.begin() as session:
        tenant = Tenant(name="harness")
        session.add(tenant)
        session.flush()
        job = Job(tenant_id=tenant.id, name="short", spec={}, epochs=5, epoch=2, status="succeeded")
        session.add(job)
        session.flush()
        for epoch, loss in [(1, 0.9), (2, 0.8)]:
            session.add(CurvePoint(job_id=job.id, epoch=epoch, train_loss=loss, seconds=0.0))
    reference = Reference(train_loss={1: 0.9, 2: 0.8, 3: 0.7}, weights={})
    (audit,) = audit_jobs(stack.factory, {"short": reference})
    assert audit.missing_epochs == [3]
    assert audit.weights_equal is False  # no model stored for a "succeeded" job
