"""The runner inside the test process, on real SQLite and PostgreSQL (no Celery involved).

Real-worker and HTTP tests are in tests/e2e; these pin the runner's own decisions.
"""

from __future__ import annotations

import threading

import numpy as np
import pytest
from sqlalchemy import update

from service.db import transaction
from service.models import Job
from tests.support.jobs import (
    curve_epochs,
    curve_losses,
    diverging_spec,
    insert_job,
    job_row,
    model_arrays,
    tiny_spec,
    wait_for,
)
from worker.runner import Outcome, run_job

pytestmark = pytest.mark.integration


class StopAfter(threading.Event):
    """A warm-shutdown flag that turns on after ``checks`` epoch boundaries."""

    def __init__(self, checks: int) -> None:
        super().__init__()
        self.checks = checks

    def is_set(self) -> bool:
        self.checks -= 1
        return self.checks < 0


@pytest.fixture(scope="module")
def reference(backend):
    """An uninterrupted run of the tiny job: its curve and its weights."""
    job_id = insert_job(backend.factory, tiny_spec(epochs=60))
    assert run_job(job_id, rt=backend.runtime()) == Outcome.succeeded
    return curve_losses(backend.factory, job_id), model_arrays(backend.factory, job_id)


def test_a_run_succeeds_with_every_epoch_once_and_a_model(backend, reference):
    job_id = insert_job(backend.factory, tiny_spec(epochs=60))
    assert run_job(job_id, rt=backend.runtime()) == Outcome.succeeded
    job = job_row(backend.factory, job_id)
    assert (job.status, job.epoch, job.attempt) == ("succeeded", 60, 1)
    assert job.metrics["epoch"] == 60
    assert curve_epochs(backend.factory, job_id) == list(range(1, 61))
    weights = model_arrays(backend.factory, job_id)
    assert sorted(weights) == ["W0", "W1", "b0", "b1"]
    assert weights["W0"].shape == (2, 8)
    assert weights["W1"].shape == (8, 3)


def test_a_second_delivery_does_nothing(backend):
    job_id = insert_job(backend.factory, tiny_spec(epochs=5))
    assert run_job(job_id, rt=backend.runtime()) == Outcome.succeeded
    before = job_row(backend.factory, job_id)
    assert run_job(job_id, rt=backend.runtime()) == Outcome.skipped
    after = job_row(backend.factory, job_id)
    assert (after.attempt, after.version) == (before.attempt, before.version)


@pytest.mark.parametrize("stop_after", [1, 17, 40])
def test_a_released_run_resumes_bit_for_bit(backend, reference, stop_after):
    """Warm shutdown at any epoch, then a new run: the same curve and the same weights."""
    losses, weights = reference
    job_id = insert_job(backend.factory, tiny_spec(epochs=60))
    stop = StopAfter(stop_after)
    assert run_job(job_id, rt=backend.runtime(), stop=stop) == Outcome.released
    released = job_row(backend.factory, job_id)
    assert released.status == "queued"
    assert released.epoch == stop_after + 1  # checkpointed at the epoch it stopped after
    assert run_job(job_id, rt=backend.runtime()) == Outcome.succeeded
    assert job_row(backend.factory, job_id).attempt == 2
    assert curve_epochs(backend.factory, job_id) == list(range(1, 61))
    assert curve_losses(backend.factory, job_id) == losses
    resumed = model_arrays(backend.factory, job_id)
    for name, array in weights.items():
        assert np.array_equal(resumed[name], array), name


def test_a_diverging_run_fails_with_the_epoch(backend):
    job_id = insert_job(backend.factory, diverging_spec())
    assert run_job(job_id, rt=backend.runtime()) == Outcome.failed
    job = job_row(backend.factory, job_id)
    assert job.status == "failed"
    assert job.error["type"] == "non_finite"
    epoch = job.error["epoch"]
    assert job.error["message"].startswith(f"training diverged at epoch {epoch}")
    # The epochs that did complete are kept, and none after the blow-up.
    assert curve_epochs(backend.factory, job_id) == list(range(1, epoch))


def test_a_missing_dataset_fails_the_job(backend):
    spec = tiny_spec()
    spec["dataset"] = {"id": "0" * 32}
    job_id = insert_job(backend.factory, spec)
    assert run_job(job_id, rt=backend.runtime()) == Outcome.failed
    error = job_row(backend.factory, job_id).error
    assert error["type"] == "dataset"
    assert "does not exist" in error["message"]


def test_cancel_stops_a_running_job(backend):
    job_id = insert_job(backend.factory, tiny_spec(epochs=100_000))
    outcome: list[str] = []
    runner = threading.Thread(target=lambda: outcome.append(run_job(job_id, rt=backend.runtime())))
    runner.start()
    wait_for(lambda: job_row(backend.factory, job_id).epoch > 0, what="first flush")
    with transaction(backend.factory) as session:  # what the API's cancel does
        session.execute(
            update(Job)
            .where(Job.id == job_id, Job.status == "running")
            .values(status="cancelling", cancel_requested=True)
        )
    runner.join(timeout=60)
    assert outcome == [Outcome.cancelled]
    job = job_row(backend.factory, job_id)
    assert job.status == "cancelled"
    assert job.epoch < 100_000
    assert curve_epochs(backend.factory, job_id) == list(range(1, job.epoch + 1))


def test_a_run_past_its_soft_time_limit_fails_at_an_epoch_boundary(backend):
    job_id = insert_job(backend.factory, tiny_spec(epochs=60))
    outcome = run_job(job_id, rt=backend.runtime(), time_limit=StopAfter(9))
    assert outcome == Outcome.failed
    job = job_row(backend.factory, job_id)
    assert job.error["type"] == "time_limit"
    assert curve_epochs(backend.factory, job_id) == list(range(1, 11))


def test_a_requested_gradient_check_is_stored_before_training(backend):
    job_id = insert_job(backend.factory, tiny_spec(epochs=5, gradient_check=True))
    assert run_job(job_id, rt=backend.runtime()) == Outcome.succeeded
    report = job_row(backend.factory, job_id).gradient_check
    assert report is not None
    assert report["passed"] is True
    assert report["relative_difference"] < report["threshold"]
