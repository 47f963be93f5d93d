"""Scenario 5 and the broker at submit: Redis restarts (losing every message), Redis down.

Redis runs without persistence here, so a restart loses the queued and unacknowledged
messages. The database still knows every job: the reaper re-sends the queued ones whose
message is gone, and runs in progress never needed the broker to write their progress.
"""

from __future__ import annotations

import threading

import pytest

from .harness.progress import job_row, wait_for_epochs
from .harness.specs import EPOCHS, tiny_job
from .harness.verdict import settle

pytestmark = pytest.mark.faults

# How long a submit may wait on a hung broker; without socket timeouts it waits forever.
HUNG_SUBMIT_PATIENCE = 30.0


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


def test_broker_hung_at_submit(pg_stack, throwaway_redis, record_tally):
    """Redis accepts connections but answers nothing: submit must still answer 202, not hang."""
    stack = pg_stack
    stack.api.submit(tiny_job("before-the-hang", seed=0))  # the client holds a connection
    throwaway_redis.pause()
    answers: list = []
    try:
        submit = threading.Thread(
            target=lambda: answers.append(stack.api.submit_response(tiny_job("hung", seed=1))),
            daemon=True,
        )
        submit.start()
        submit.join(timeout=HUNG_SUBMIT_PATIENCE)
        assert answers, f"POST /jobs still waiting on a hung broker after {HUNG_SUBMIT_PATIENCE}s"
        assert answers[0].status_code == 202, answers[0].get_data(as_text=True)
    finally:
        throwaway_redis.resume()
    stack.start_worker("after-the-hang")
    job_ids = [job["id"] for job in stack.api.get("/jobs").get_json()["items"]]
    tally, _ = settle(stack, "broker hung at submit", job_ids, record_tally)
    assert tally.succeeded == 2
