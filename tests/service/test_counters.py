"""The counters GET /metrics reads from the database: written in the transaction of what
they count (a recovery, a finish, a flush), summed over shards, histograms cumulated."""

from __future__ import annotations

from datetime import timedelta

from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import update

from service import counters, heartbeats, job_claim, job_finish, job_progress, recovery
from service.db import transaction
from service.metrics import render
from service.models import Job
from service.timeutil import utcnow
from tests.support.jobs import insert_job, tiny_spec


def samples(factory, settings) -> dict:
    text = render(factory.kw["bind"], settings).decode()
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def test_recoveries_epochs_and_durations_are_counted_with_their_change(factory, settings):
    lost = insert_job(factory, tiny_spec())
    ok = insert_job(factory, tiny_spec())
    first = job_claim.claim(factory, lost, "w:1", lease_seconds=60, max_attempts=3)
    run = job_claim.claim(factory, ok, "w:2", lease_seconds=60, max_attempts=3)
    assert first
    assert run
    points = [{"epoch": e, "train_loss": 1.0 / e, "seconds": 0.01} for e in (1, 2, 3)]
    assert job_progress.flush(factory, ok, run.attempt, points, lease_seconds=60).alive
    assert job_finish.finish_failed(factory, ok, run.attempt, {"type": "internal"})
    # The first run's worker died: its lease expires and the reaper requeues the job.
    with transaction(factory) as session:
        past = utcnow() - timedelta(seconds=5)
        session.execute(update(Job).where(Job.id == lost).values(lease_expires_at=past))
    result = recovery.recover(factory, max_attempts=3)
    assert result.requeued == [lost]
    heartbeats.beat(factory, "host:1")

    got = samples(factory, settings)
    assert got[("deltaflow_jobs_recovered_total", (("outcome", "requeued"),))] == 1
    assert got[("deltaflow_jobs_recovered_total", (("outcome", "exhausted"),))] == 0
    assert got[("deltaflow_epochs_total", ())] == 3
    assert got[("deltaflow_job_duration_seconds_count", (("status", "failed"),))] == 1
    assert (
        got[("deltaflow_job_duration_seconds_bucket", (("le", "+Inf"), ("status", "failed")))] == 1
    )
    assert got[("deltaflow_job_duration_seconds_count", (("status", "succeeded"),))] == 0
    assert got[("deltaflow_workers_alive", ())] == 1
    assert got[("deltaflow_jobs", (("status", "queued"),))] == 1
    assert got[("deltaflow_jobs", (("status", "failed"),))] == 1
    assert got[("deltaflow_webhook_deliveries", (("status", "failed"),))] == 0
    heartbeats.forget(factory, "host:1")
    assert samples(factory, settings)[("deltaflow_workers_alive", ())] == 0


def test_a_counter_sums_its_shards(factory):
    with transaction(factory) as session:
        for key in ("a", "b", "c", "d", "a"):
            counters.add(session, "x", 2, labels={"k": "v"}, shard_key=key)
    with factory() as session:
        assert counters.totals(session.connection())[("x", "k=v")] == 10
