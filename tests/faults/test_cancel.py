"""Scenario 7: cancel during a run, and cancel while the worker is down.

A running job stops at its next flush; a job whose worker died is ``cancelling`` until a
worker's reaper sees its lease expired and ends it ``cancelled``; a queued job is
cancelled at once. Every curve still has each epoch it reached exactly once.
"""

from __future__ import annotations

import pytest

from .harness.progress import job_row, wait_for_running_job, wait_for_status
from .harness.specs import EPOCHS, tiny_job
from .harness.verdict import settle

pytestmark = pytest.mark.faults

LONG = 3 * EPOCHS  # long enough that a cancel lands before the last epoch


def test_cancel_during_run_and_while_worker_is_down(any_stack, record_tally):
    stack, api = any_stack, any_stack.api
    first = stack.start_worker("first")
    during = api.submit(tiny_job("cancel-during-run", seed=1, epochs=LONG))
    wait_for_running_job(stack.factory, [during], min_epoch=20, timeout=60)
    assert api.cancel(during)["status"] in {"cancelling", "cancelled"}
    wait_for_status(stack.factory, during, {"cancelled"}, timeout=60)
    assert job_row(stack.factory, during).epoch < LONG  # stopped early, not run to the end

    orphaned = api.submit(tiny_job("cancel-while-down", seed=1, epochs=LONG))
    wait_for_running_job(stack.factory, [orphaned], min_epoch=20, timeout=60)
    first.kill_group()
    assert api.cancel(orphaned)["status"] == "cancelling"  # its run is gone, nobody answers
    queued = api.submit(tiny_job("cancel-while-queued", seed=2))
    survivor = api.submit(tiny_job("survivor", seed=3, variant=1))
    assert api.cancel(queued)["status"] == "cancelled"  # at once, no worker needed
    assert job_row(stack.factory, orphaned).status == "cancelling"

    stack.start_worker("second")
    job_ids = [during, orphaned, queued, survivor]
    tally, audits = settle(stack, "7 cancel (running, worker down, queued)", job_ids, record_tally)
    assert (tally.cancelled, tally.succeeded) == (3, 1)
    assert audits[orphaned].status == "cancelled"
    assert audits[orphaned].epoch < LONG
    assert audits[queued].curve_epochs == []
