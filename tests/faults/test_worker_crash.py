"""A worker dies: SIGKILL of the whole worker, SIGKILL of one pool child, SIGTERM.

The lease of the lost run expires, the reaper re-dispatches the job, and the next run
resumes from the last checkpoint; the curve and the weights show no trace of the fault.
"""

from __future__ import annotations

import pytest

from .harness.progress import wait_for_epochs
from .harness.specs import EPOCHS, tiny_job
from .harness.verdict import settle

pytestmark = pytest.mark.faults


def test_sigkill_whole_worker_mid_batch(any_stack, record_tally):
    """Scenario 1: 10 jobs x 200 epochs; the whole worker dies at about half; a new one finishes."""
    stack = any_stack
    api = stack.api
    first = stack.start_worker("first")
    job_ids = [api.submit(tiny_job(f"crash-{i}", seed=i % 3)) for i in range(10)]
    wait_for_epochs(stack.factory, job_ids, total=len(job_ids) * EPOCHS // 2, timeout=120)
    first.kill_group()
    stack.start_worker("second")
    tally, audits = settle(stack, "1 SIGKILL whole worker", job_ids, record_tally)
    assert tally.succeeded == len(job_ids)
    # The kill hit running jobs: they were claimed again and resumed.
    assert max(audit.attempt for audit in audits.values()) >= 2
