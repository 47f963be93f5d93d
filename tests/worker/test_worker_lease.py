"""A run that cannot reach the database stops once its lease has lapsed (PostgreSQL).

The database is made unreachable for this test's database only: new connections are
refused and the open ones are terminated, which is what a network partition between a
worker and PostgreSQL looks like to the worker.
"""

from __future__ import annotations

import threading
from datetime import timedelta
from urllib.parse import urlsplit

import psycopg
import pytest

from service import recovery
from service.timeutil import utcnow
from tests.support.jobs import insert_job, job_row, tiny_spec, wait_for
from worker.runner import Outcome, run_job

pytestmark = pytest.mark.integration

LEASE = 1.0


def set_reachable(server, database: str, reachable: bool) -> None:
    with psycopg.connect(server.admin_url(), autocommit=True, connect_timeout=5) as conn:
        conn.execute(f'ALTER DATABASE "{database}" WITH ALLOW_CONNECTIONS {str(reachable).lower()}')
        if not reachable:
            conn.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                "WHERE datname = %s AND pid <> pg_backend_pid()",
                (database,),
            )


def test_a_run_that_cannot_heartbeat_stops_and_the_reaper_recovers_its_job(
    production_backend, postgres_server
):
    backend = production_backend
    database = urlsplit(backend.database_url).path.lstrip("/")
    job_id = insert_job(backend.factory, tiny_spec(epochs=100_000))
    outcome: list[str] = []
    rt = backend.runtime(lease_seconds=LEASE, flush_seconds=0.1)
    runner = threading.Thread(target=lambda: outcome.append(run_job(job_id, rt=rt)))
    runner.start()
    try:
        wait_for(lambda: job_row(backend.factory, job_id).epoch > 0, what="the first flush")
        set_reachable(postgres_server, database, reachable=False)
        runner.join(timeout=60)
        assert not runner.is_alive()
        assert outcome == [Outcome.lost]
    finally:
        set_reachable(postgres_server, database, reachable=True)
        runner.join(timeout=60)
    job = job_row(backend.factory, job_id)
    assert job.status == "running"  # nobody could write; its lease runs out
    later = utcnow() + timedelta(seconds=LEASE + 1)
    recovered = recovery.recover(backend.factory, max_attempts=3, now=later)
    assert job_id in recovered.requeued
