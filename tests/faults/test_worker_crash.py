"""A worker dies: SIGKILL of the whole worker, SIGKILL of one pool child, SIGTERM.

The lease of the lost run expires, the reaper re-dispatches the job, and the next run
resumes from the last checkpoint; the curve and the weights show no trace of the fault.
"""

from __future__ import annotations

import os
import re
import signal

import pytest

from .harness.progress import owner_pid, wait_for_epochs, wait_for_running_job
from .harness.specs import EPOCHS, tiny_job
from .harness.verdict import settle

pytestmark = pytest.mark.faults


def test_sigkill_whole_worker_mid_batch(any_stack, record_tally):
    """Scenario 1: 10 jobs x 200 epochs; the whole worker dies at about half; a new one finishes."""
    stack = any_stack
    api = stack.api
    first = stack.start_worker("first")
    job_ids = [api.submit(tiny_job(f"crash-{i}", seed=i % 4, variant=i)) for i in range(10)]
    wait_for_epochs(stack.factory, job_ids, total=len(job_ids) * EPOCHS // 2, timeout=120)
    wait_for_running_job(stack.factory, job_ids, min_epoch=1, timeout=60)
    first.kill_group()
    stack.start_worker("second")
    tally, audits = settle(stack, "1 SIGKILL whole worker", job_ids, record_tally)
    assert tally.succeeded == len(job_ids)
    # The kill hit running jobs: they were claimed again and resumed.
    assert max(audit.attempt for audit in audits.values()) >= 2


def test_sigkill_one_pool_child(pg_stack, record_tally):
    """Scenario 2: only the pool child running a job dies; the worker itself lives on."""
    stack = pg_stack
    worker = stack.start_worker("survivor")
    specs = [tiny_job(f"child-{i}", seed=i, epochs=2 * EPOCHS, variant=i) for i in range(4)]
    job_ids = [stack.api.submit(spec) for spec in specs]
    victim_job = wait_for_running_job(stack.factory, job_ids, min_epoch=40, timeout=60)
    victim_pid = owner_pid(victim_job)
    assert victim_pid in worker.pool_children(), (victim_job.lease_owner, worker)
    os.kill(victim_pid, signal.SIGKILL)
    tally, audits = settle(stack, "2 SIGKILL one pool child", job_ids, record_tally)
    assert worker.alive
    assert tally.succeeded == len(job_ids)
    assert audits[victim_job.id].attempt >= 2


def test_sigterm_hands_the_job_to_another_worker(every_stack, record_tally):
    """Scenario 8: warm shutdown checkpoints and releases the job; another worker resumes it."""
    stack = every_stack
    workers = [stack.start_worker(name, concurrency=1) for name in ("one", "other")]
    job_id = stack.api.submit(tiny_job("sigterm", seed=5, epochs=3 * EPOCHS, variant=1))
    job = wait_for_running_job(stack.factory, [job_id], min_epoch=30, timeout=60)
    (leaving,) = [w for w in workers if owner_pid(job) in w.pool_children()]
    (staying,) = [w for w in workers if w is not leaving]
    assert leaving.terminate() == 0, leaving.log_tail()
    tally, audits = settle(stack, "8 SIGTERM mid-job", [job_id], record_tally)
    assert tally.succeeded == 1
    assert audits[job_id].attempt == 2
    assert f"job={job_id} released at epoch=" in leaving.log_text()
    resumed = re.search(rf"job={job_id} claimed attempt=2 resume_from=(\d+)", staying.log_text())
    assert resumed is not None, staying.log_tail()
    assert int(resumed.group(1)) >= 30
