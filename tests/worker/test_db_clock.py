"""Leases live on the database's clock (service.clock), on SQLite and PostgreSQL alike.

Each check compares one database time with another, never with this host's clock; the
hosts whose clocks are wrong are tests/faults/test_clock_skew.py.
"""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import select

from service import job_claim, job_progress, recovery
from service.clock import db_after, db_now, read_db_now
from service.db import transaction
from service.models import Job
from tests.support.jobs import insert_job, job_row, tiny_spec

pytestmark = pytest.mark.integration

LEASE = 30.0


def test_the_clock_expressions_order_as_times(backend):
    with transaction(backend.factory) as session:
        earlier, now, later = session.execute(select(db_after(-1.5), db_now(), db_after(2.5))).one()
    assert earlier < now < later
    assert later - earlier == timedelta(seconds=4)  # both from the same statement's time
    assert now.tzinfo is not None or backend.kind == "embedded"


def test_a_claim_and_its_heartbeat_set_the_lease_from_the_database_clock(backend):
    job_id = insert_job(backend.factory, tiny_spec())
    claim = job_claim.claim(backend.factory, job_id, "a", lease_seconds=LEASE, max_attempts=3)
    assert claim is not None
    with transaction(backend.factory) as session:
        lease = session.scalar(select(Job.lease_expires_at).where(Job.id == job_id))
        ends_after = session.scalar(
            select(
                (Job.lease_expires_at > db_after(LEASE - 60))
                & (Job.lease_expires_at <= db_after(LEASE))
            ).where(Job.id == job_id)
        )
    assert ends_after  # written as the database's now + lease, not this host's
    pulse = job_progress.heartbeat(backend.factory, job_id, claim.attempt, lease_seconds=2 * LEASE)
    assert pulse.alive
    assert job_row(backend.factory, job_id).lease_expires_at > lease


def test_the_reaper_decides_on_the_database_clock(backend):
    """A lease that ended by the database's clock is recovered; one that has not is kept,
    whatever time the reaper's host thinks it is."""
    live = insert_job(backend.factory, tiny_spec())
    dead = insert_job(backend.factory, tiny_spec())
    for job_id in (live, dead):
        assert job_claim.claim(backend.factory, job_id, "a", lease_seconds=LEASE, max_attempts=3)
    with transaction(backend.factory) as session:
        session.execute(
            Job.__table__.update().where(Job.id == dead).values(lease_expires_at=db_after(-1))
        )
        db_time = read_db_now(session)
    result = recovery.recover(backend.factory, max_attempts=3)
    assert dead in result.requeued
    assert live not in result.requeued
    assert job_row(backend.factory, live).status == "running"
    assert db_time.tzinfo is not None
