"""Scenario 4: the same task message delivered three times; one run trains, two write nothing.

Celery over Redis is at-least-once, so duplicates are normal. The three messages are
waiting before the worker starts, so its three pool children take them at the same time.
"""

from __future__ import annotations

import pytest

from service.queue import send_train

from .harness.specs import tiny_job
from .harness.verdict import settle
from .harness.waiting import wait_until

pytestmark = pytest.mark.faults


def test_three_deliveries_one_run(pg_stack, record_tally):
    stack = pg_stack
    job_id = stack.api.submit(tiny_job("thrice", seed=3))  # the API sends the first message
    for _ in range(2):
        assert send_train(stack.settings, job_id, "interactive")
    worker = stack.start_worker("triple", concurrency=3)
    tally, audits = settle(stack, "4 message delivered 3x", [job_id], record_tally)
    assert tally.succeeded == 1
    assert audits[job_id].attempt == 1  # only one claim ever won
    # The two other deliveries were consumed too, and found the job taken (or finished).
    wait_until(
        lambda: worker.log_text().count(f"job={job_id} not claimable") >= 2,
        60,
        "the two duplicate deliveries to be consumed",
        describe=worker.log_tail,
    )
    assert worker.log_text().count(f"job={job_id} claimed attempt=") == 1, worker.log_tail()
