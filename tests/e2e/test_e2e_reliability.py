"""Reliability paths of the runner and the reaper with real worker processes.

The fault-injection suite (tests/faults) breaks servers and processes on purpose; these
are the everyday paths: warm shutdown hands a job over, a job whose message never
arrived is sent again, a run past its soft time limit fails with the reason.
"""

from __future__ import annotations

import numpy as np
import pytest

from tests.support.jobs import (
    curve_epochs,
    curve_losses,
    insert_job,
    job_row,
    model_arrays,
    tiny_spec,
    wait_for,
    wait_for_status,
)

pytestmark = [pytest.mark.integration, pytest.mark.slow]

FINISHED = {"succeeded", "failed", "cancelled"}


def long_spec(epochs: int = 1200) -> dict:
    spec = tiny_spec(epochs=epochs)
    spec["dataset"]["n_samples"] = 600
    spec["network"]["layers"] = [{"units": 32, "activation": "tanh"}] * 2
    return spec


def test_warm_shutdown_checkpoints_and_another_worker_finishes_bit_for_bit(
    api, backend, worker_process
):
    first = worker_process(backend)
    reference = api.submit(long_spec(), name="reference")
    assert api.wait(reference, FINISHED)["status"] == "succeeded"

    job_id = api.submit(long_spec(), name="handed over")
    wait_for(lambda: job_row(backend.factory, job_id).epoch >= 200, what="epoch 200 stored")
    assert first.stop() == 0  # SIGTERM: warm shutdown
    released = job_row(backend.factory, job_id)
    assert released.status == "queued", "the job ended before the shutdown; make it longer"
    assert released.lease_owner is None
    assert released.attempt == 1

    worker_process(backend)
    job = api.wait(job_id, FINISHED)
    assert job["status"] == "succeeded", job["error"]
    assert job["attempt"] == 2
    assert curve_epochs(backend.factory, job_id) == list(range(1, 1201))
    assert curve_losses(backend.factory, job_id) == curve_losses(backend.factory, reference)
    expected, resumed = (
        model_arrays(backend.factory, reference),
        model_arrays(backend.factory, job_id),
    )
    for name, array in expected.items():
        assert np.array_equal(resumed[name], array), name


def test_a_job_whose_message_never_arrived_is_sent_by_the_reaper(backend, worker_process):
    worker_process(backend, requeue_after_seconds=1)
    job_id = insert_job(backend.factory, tiny_spec(epochs=10))  # committed, never sent
    job = wait_for_status(backend.factory, job_id, FINISHED)
    assert job.status == "succeeded"
    assert job.attempt == 1
    assert job.dispatched_at is not None


def test_a_run_past_its_soft_time_limit_fails_with_the_reason(api, backend, worker_process):
    worker_process(backend, soft_time_limit_seconds=1, hard_time_limit_seconds=60)
    job_id = api.submit(tiny_spec(epochs=100_000))
    job = api.wait(job_id, FINISHED)
    assert job["status"] == "failed"
    assert job["error"]["type"] == "time_limit"
    assert "time limit of 1 s" in job["error"]["message"]
    row = job_row(backend.factory, job_id)
    assert curve_epochs(backend.factory, job_id) == list(range(1, row.epoch + 1))


def test_a_killed_worker_is_resumed_bit_for_bit_by_another(api, backend, worker_process):
    """SIGKILL the whole worker mid-run; a new worker resumes from the checkpoint and ends
    with exactly the curve and weights of an uninterrupted run with the same seed."""
    doomed = worker_process(backend)
    reference = api.submit(long_spec(), name="reference")
    assert api.wait(reference, {"succeeded", "failed"})["status"] == "succeeded"

    job_id = api.submit(long_spec(), name="interrupted")
    wait_for(lambda: job_row(backend.factory, job_id).epoch >= 200, what="epoch 200 stored")
    doomed.kill()
    interrupted = job_row(backend.factory, job_id)
    assert interrupted.status == "running", "the job finished before the kill; make it longer"

    worker_process(backend)  # its reaper requeues the job once the dead run's lease expires
    job = api.wait(job_id, {"succeeded", "failed"}, timeout=120)
    assert job["status"] == "succeeded", job["error"]
    assert job["attempt"] == 2
    assert curve_epochs(backend.factory, job_id) == list(range(1, 1201))
    assert curve_losses(backend.factory, job_id) == curve_losses(backend.factory, reference)
    expected = model_arrays(backend.factory, reference)
    resumed = model_arrays(backend.factory, job_id)
    for name, array in expected.items():
        assert np.array_equal(resumed[name], array), name
