"""The worker enforces the per-job memory limit too (issue 11): a job whose run would need
more than ``DELTAFLOW_MAX_JOB_MEMORY_BYTES`` fails alone with a clear error, before its
training allocates, and the same runtime goes on to run the next job."""

from __future__ import annotations

import pytest

from tests.support.jobs import insert_job, job_row, tiny_spec
from worker.runner import Outcome, run_job

pytestmark = pytest.mark.integration


def test_a_job_over_the_memory_limit_fails_alone(backend):
    big = tiny_spec()
    big["network"]["layers"] = [{"units": 2000, "activation": "tanh"}]
    big["training"]["batch_size"] = None
    job_id = insert_job(backend.factory, big)
    rt = backend.runtime(max_job_memory_bytes=2_000_000)
    assert run_job(job_id, rt=rt) == Outcome.failed
    error = job_row(backend.factory, job_id).error
    assert error["type"] == "memory_limit"
    assert "DELTAFLOW_MAX_JOB_MEMORY_BYTES" in error["message"]

    small = insert_job(backend.factory, tiny_spec())
    assert run_job(small, rt=rt) == Outcome.succeeded
