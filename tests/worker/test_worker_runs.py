"""The run-side job domain (service.runs) on real SQLite and PostgreSQL.

Time is passed explicitly (``now=``) so lease expiry is tested without sleeping.
"""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import update

from service import job_claim, job_finish, job_progress, recovery
from service.db import transaction
from service.models import Job
from service.timeutil import utcnow
from tests.support.jobs import curve_epochs, insert_job, job_row, tiny_spec

pytestmark = pytest.mark.integration

LEASE = 10.0
MAX_ATTEMPTS = 3


def point(epoch: int, loss: float = 1.0) -> dict:
    return {"epoch": epoch, "train_loss": loss, "seconds": 0.01}


def claim(backend, job_id, owner="a", now=None):
    return job_claim.claim(
        backend.factory, job_id, owner, lease_seconds=LEASE, max_attempts=MAX_ATTEMPTS, now=now
    )


def flush(backend, claimed, points, **kwargs):
    return job_progress.flush(
        backend.factory, claimed.job_id, claimed.attempt, points, lease_seconds=LEASE, **kwargs
    )


def set_job(backend, job_id, **values):
    with transaction(backend.factory) as session:
        session.execute(update(Job).where(Job.id == job_id).values(**values))


def sweep(backend, now):
    return recovery.recover(backend.factory, max_attempts=MAX_ATTEMPTS, now=now)


def test_a_job_is_claimed_once(backend):
    job_id = insert_job(backend.factory, tiny_spec())
    first = claim(backend, job_id, "a")
    assert first is not None
    assert first.attempt == 1
    assert first.checkpoint is None
    assert claim(backend, job_id, "b") is None  # a duplicate delivery does nothing
    job = job_row(backend.factory, job_id)
    assert (job.status, job.attempt, job.lease_owner) == ("running", 1, "a")
    assert job.started_at is not None


def test_an_expired_lease_is_reclaimed_and_the_old_run_is_fenced_off(backend):
    job_id = insert_job(backend.factory, tiny_spec())
    old = claim(backend, job_id, "a")
    assert flush(backend, old, [point(1), point(2)]).alive
    later = utcnow() + timedelta(seconds=LEASE + 1)
    new = claim(backend, job_id, "b", now=later)
    assert new is not None
    assert new.attempt == 2
    stale = flush(backend, old, [point(3)])
    assert not stale.alive
    assert curve_epochs(backend.factory, job_id) == [1, 2]
    assert not job_finish.finish_succeeded(
        backend.factory, job_id, old.attempt, weights=b"x", meta={}
    )
    assert not job_progress.heartbeat(
        backend.factory, job_id, old.attempt, lease_seconds=LEASE
    ).alive
    assert flush(backend, new, [point(3)]).alive
    assert job_row(backend.factory, job_id).lease_owner == "b"


def test_recomputed_epochs_are_stored_once_and_progress_only_moves_forward(backend):
    job_id = insert_job(backend.factory, tiny_spec())
    run = claim(backend, job_id)
    assert flush(backend, run, [point(e, loss=1.0) for e in range(1, 6)]).alive
    # A resumed run recomputes epochs 3..5 after a checkpoint at 2, then goes on.
    assert flush(backend, run, [point(e, loss=9.0) for e in range(3, 5)]).alive
    job = job_row(backend.factory, job_id)
    assert job.epoch == 5
    assert job.metrics["epoch"] == 5
    assert flush(backend, run, [point(e, loss=2.0) for e in range(5, 8)]).alive
    assert curve_epochs(backend.factory, job_id) == list(range(1, 8))
    job = job_row(backend.factory, job_id)
    assert (job.epoch, job.metrics["epoch"], job.metrics["train_loss"]) == (7, 7, 2.0)


def test_a_checkpoint_is_written_with_its_points_and_handed_to_the_next_claim(backend):
    job_id = insert_job(backend.factory, tiny_spec())
    run = claim(backend, job_id)
    version = job_row(backend.factory, job_id).version
    assert flush(backend, run, [point(1), point(2)], checkpoint=(2, b"state-at-2")).alive
    assert job_row(backend.factory, job_id).version > version  # the ETag changes
    assert flush(backend, run, [point(3)]).alive
    resumed = claim(backend, job_id, "b", now=utcnow() + timedelta(seconds=LEASE + 1))
    assert (resumed.checkpoint_epoch, resumed.checkpoint) == (2, b"state-at-2")


def test_a_pending_cancel_is_reported_by_flush_and_heartbeat(backend):
    job_id = insert_job(backend.factory, tiny_spec())
    run = claim(backend, job_id)
    assert not flush(backend, run, [point(1)]).cancel_requested
    set_job(backend, job_id, status="cancelling", cancel_requested=True)
    assert flush(backend, run, [point(2)]).cancel_requested
    assert job_progress.heartbeat(
        backend.factory, job_id, run.attempt, lease_seconds=LEASE
    ).cancel_requested
    assert job_finish.finish_cancelled(backend.factory, job_id, run.attempt)
    job = job_row(backend.factory, job_id)
    assert (job.status, job.lease_owner, job.lease_expires_at) == ("cancelled", None, None)


def test_success_stores_the_model_and_drops_the_checkpoint(backend):
    job_id = insert_job(backend.factory, tiny_spec())
    run = claim(backend, job_id)
    flush(backend, run, [point(1)], checkpoint=(1, b"s"))
    assert job_finish.finish_succeeded(
        backend.factory, job_id, run.attempt, weights=b"npz", meta={"k": 1}
    )
    assert not job_finish.finish_failed(backend.factory, job_id, run.attempt, {"type": "internal"})
    job = job_row(backend.factory, job_id)
    assert job.status == "succeeded"
    assert job.finished_at is not None
    again = claim(backend, job_id, now=utcnow() + timedelta(hours=1))
    assert again is None  # finished jobs are never claimed again


def test_release_puts_the_job_back_in_the_queue(backend):
    job_id = insert_job(backend.factory, tiny_spec())
    run = claim(backend, job_id)
    assert job_finish.release(backend.factory, job_id, run.attempt) == "queued"
    job = job_row(backend.factory, job_id)
    assert (job.status, job.lease_owner, job.lease_expires_at) == ("queued", None, None)
    assert job.dispatched_at is None  # the next dispatch pass sends it at once
    assert claim(backend, job_id, "b").attempt == 2


def test_release_of_a_cancelling_job_cancels_it(backend):
    job_id = insert_job(backend.factory, tiny_spec())
    run = claim(backend, job_id)
    set_job(backend, job_id, status="cancelling", cancel_requested=True)
    assert job_finish.release(backend.factory, job_id, run.attempt) == "cancelled"


def test_the_sweep_requeues_expired_runs_once(backend):
    job_id = insert_job(backend.factory, tiny_spec())
    claim(backend, job_id)
    now = utcnow()
    assert job_id not in sweep(backend, now).requeued  # lease still valid
    later = now + timedelta(seconds=LEASE + 1)
    first = sweep(backend, later)
    second = sweep(backend, later)  # another reaper, same moment: nothing left to do
    assert job_id in first.requeued
    assert job_id not in second.requeued
    job = job_row(backend.factory, job_id)
    assert (job.status, job.dispatched_at) == ("queued", None)  # the dispatcher's now


def test_the_sweep_fails_a_job_after_max_attempts(backend):
    job_id = insert_job(backend.factory, tiny_spec())
    now = utcnow()
    for attempt in range(1, MAX_ATTEMPTS + 1):
        run = claim(backend, job_id, f"w{attempt}", now=now)
        assert run.attempt == attempt
        now += timedelta(seconds=LEASE + 1)
        result = sweep(backend, now)
        if attempt < MAX_ATTEMPTS:
            assert job_id in result.requeued
    assert job_id in result.exhausted
    job = job_row(backend.factory, job_id)
    assert job.status == "failed"
    assert job.error["type"] == "attempts_exhausted"
    assert job.error["message"].startswith(f"gave up after {MAX_ATTEMPTS} attempts")
    assert claim(backend, job_id, now=now + timedelta(hours=1)) is None


def test_an_expired_run_cannot_be_reclaimed_past_max_attempts(backend):
    job_id = insert_job(backend.factory, tiny_spec())
    now = utcnow()
    for _ in range(MAX_ATTEMPTS):
        assert claim(backend, job_id, now=now) is not None
        now += timedelta(seconds=LEASE + 1)  # a redelivered message reclaims directly
    assert claim(backend, job_id, now=now) is None
    assert job_id in sweep(backend, now).exhausted


def test_the_sweep_cancels_a_cancelling_job_whose_run_is_gone(backend):
    job_id = insert_job(backend.factory, tiny_spec())
    claim(backend, job_id)
    set_job(backend, job_id, status="cancelling", cancel_requested=True)
    result = sweep(backend, utcnow() + timedelta(seconds=LEASE + 1))
    assert job_id in result.cancelled
    assert job_row(backend.factory, job_id).status == "cancelled"


def test_warm_shutdown_releases_do_not_count_toward_max_attempts(backend):
    # Rolling restarts hand a long job over several times; only lost runs are strikes.
    job_id = insert_job(backend.factory, tiny_spec())
    now = utcnow()
    for _ in range(MAX_ATTEMPTS + 1):
        run = claim(backend, job_id, now=now)
        assert job_finish.release(backend.factory, job_id, run.attempt, now=now) == "queued"
    for lost in range(1, MAX_ATTEMPTS + 1):
        assert claim(backend, job_id, now=now) is not None
        now += timedelta(seconds=LEASE + 1)
        result = sweep(backend, now)
        if lost < MAX_ATTEMPTS:
            assert job_id in result.requeued
    assert job_id in result.exhausted
    job = job_row(backend.factory, job_id)
    assert (job.attempt, job.releases) == (2 * MAX_ATTEMPTS + 1, MAX_ATTEMPTS + 1)
    assert job.error["message"].startswith(f"gave up after {MAX_ATTEMPTS} attempts")
