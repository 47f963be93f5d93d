"""Warm shutdown is quiet: a handed-back job is one INFO line, never a traceback."""

from __future__ import annotations

import pytest

from tests.support.jobs import job_row, tiny_spec, wait_for

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def long_spec(epochs: int = 1500) -> dict:
    spec = tiny_spec(epochs=epochs)
    spec["dataset"]["n_samples"] = 600
    spec["network"]["layers"] = [{"units": 32, "activation": "tanh"}] * 2
    return spec


def test_warm_shutdown_hands_the_job_back_without_a_traceback(api, backend, worker_process):
    worker = worker_process(backend)
    job_id = api.submit(long_spec(), name="handed back")
    wait_for(lambda: job_row(backend.factory, job_id).epoch >= 50, what="epoch 50 stored")
    assert worker.stop() == 0  # SIGTERM: warm shutdown
    assert job_row(backend.factory, job_id).status == "queued"
    log = worker.log()
    assert "Traceback" not in log, log[-4000:]
    assert "Reject" not in log, log[-4000:]
    assert "message given back: this worker is shutting down" in log or "released" in log
