"""Scenario 5 and the broker at submit: Redis restarts (losing every message), Redis down.

Redis runs without persistence here, so a restart loses the queued and unacknowledged
messages. The database still knows every job: the reaper re-sends the queued ones whose
message is gone, and runs in progress never needed the broker to write their progress.
"""

from __future__ import annotations

import pytest

from .harness.progress import job_row, wait_for_epochs
from .harness.specs import EPOCHS, tiny_job
from .harness.verdict import settle

pytestmark = pytest.mark.faults


def test_redis_restart_while_jobs_run(pg_stack, throwaway_redis, record_tally):
    """Scenario 5: 8 jobs on two pool children; Redis restarts with jobs running and queued."""
    stack = pg_stack
    stack.start_worker("steady")
    job_ids = [stack.api.submit(tiny_job(f"redis-{i}", seed=i % 4, variant=i)) for i in range(8)]
    wait_for_epochs(stack.factory, job_ids, total=len(job_ids) * EPOCHS // 4, timeout=120)
    throwaway_redis.restart()
    tally, _ = settle(stack, "5 Redis restarted", job_ids, record_tally)
    assert tally.succeeded == len(job_ids)


def test_broker_down_at_submit(pg_stack, throwaway_redis, record_tally):
    """Submit answers 202 and stores the job queued; the reaper sends it once Redis is back."""
    stack = pg_stack
    throwaway_redis.stop()
    try:
        response = stack.api.submit_response(tiny_job("broker-down", seed=4))
        assert response.status_code == 202, response.get_data(as_text=True)
        job_id = response.get_json()["id"]
        job = job_row(stack.factory, job_id)
        assert (job.status, job.dispatched_at) == ("queued", None)
    finally:
        throwaway_redis.start()
    stack.start_worker("late")
    tally, _ = settle(stack, "broker down at submit", [job_id], record_tally)
    assert tally.succeeded == 1
