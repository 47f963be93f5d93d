"""Scenario 3: a job that kills its process every time fails after the attempt limit.

The worker runs through ``faulty_worker.py``: with ``DELTAFLOW_FAULT_INJECTION=1`` a job
named with ``POISON_MARKER`` kills its pool child after its first epoch, every attempt.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from .faulty_worker import POISON_MARKER
from .harness.specs import tiny_job
from .harness.verdict import settle

pytestmark = pytest.mark.faults

FAULTY_WORKER = Path(__file__).with_name("faulty_worker.py")


def test_poison_pill_fails_after_the_attempt_limit(every_stack, record_tally):
    stack = every_stack
    command = [sys.executable, str(FAULTY_WORKER), *stack.celery_worker_args("poisoned", 2)]
    stack.start_worker("poisoned", command=command, env={"DELTAFLOW_FAULT_INJECTION": "1"})
    poison_id = stack.api.submit(tiny_job(f"{POISON_MARKER}-0", seed=0))
    healthy_ids = [stack.api.submit(tiny_job(f"healthy-{i}", seed=i)) for i in range(4)]
    tally, audits = settle(stack, "3 poison pill", [poison_id, *healthy_ids], record_tally)
    poison = audits[poison_id]
    assert poison.status == "failed", poison
    assert poison.error["type"] == "attempts_exhausted", poison
    assert "attempts" in poison.error["message"], poison
    assert poison.attempt == stack.settings.max_attempts, poison
    assert (tally.succeeded, tally.failed) == (len(healthy_ids), 1)
