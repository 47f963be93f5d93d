"""Submission is idempotent under concurrency: one Idempotency-Key from many threads, one job.

No worker runs here: what is under test is the API and the database's unique constraint.
The same holds for a batch (``POST /batches``), which creates many jobs in one transaction.
"""

from __future__ import annotations

import threading
from typing import Any

import pytest
from sqlalchemy import func, select

from service.models import Batch, Job

from .harness.api import API
from .harness.specs import tiny_job

pytestmark = pytest.mark.faults

THREADS = 8


def post_concurrently(stack, path: str, body: dict[str, Any], key: str) -> list[tuple[int, Any]]:
    """THREADS clients post the same body with the same key at the same moment."""
    start = threading.Barrier(THREADS)
    answers: list[tuple[int, Any]] = []
    lock = threading.Lock()
    headers = {**stack.api.headers, "Idempotency-Key": key}

    def post() -> None:
        with stack.api.client() as client:
            start.wait()
            response = client.post(f"{API}{path}", json=body, headers=headers)
        payload = response.get_json(silent=True) or {}
        with lock:
            answers.append((response.status_code, payload.get("id")))

    threads = [threading.Thread(target=post) for _ in range(THREADS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert len(answers) == THREADS
    return answers


def count(stack, model) -> int:
    with stack.factory() as session:
        return session.scalar(select(func.count()).select_from(model))


def test_concurrent_job_submits_create_one_job(any_stack):
    stack = any_stack
    answers = post_concurrently(stack, "/jobs", tiny_job("idempotent", seed=9), "job-key")
    assert {code for code, _ in answers} == {202}, answers
    assert len({job_id for _, job_id in answers}) == 1, answers
    assert count(stack, Job) == 1

    different = stack.api.submit_response(tiny_job("idempotent", seed=10), "job-key")
    assert different.status_code == 422, different.get_data(as_text=True)


def test_concurrent_batch_submits_create_one_batch(any_stack):
    stack = any_stack
    body = {"name": "idempotent sweep", "jobs": [tiny_job(f"b{i}", seed=i) for i in range(3)]}
    answers = post_concurrently(stack, "/batches", body, "batch-key")
    assert {code for code, _ in answers} == {202}, answers
    assert len({batch_id for _, batch_id in answers}) == 1, answers
    assert (count(stack, Batch), count(stack, Job)) == (1, 3)
