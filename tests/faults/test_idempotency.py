"""Submission is idempotent under concurrency: one Idempotency-Key from many threads, one job.

No worker runs here: what is under test is the API and the database's unique constraint.
"""

from __future__ import annotations

import threading

import pytest
from sqlalchemy import func, select

from service.models import Job

from .harness.specs import tiny_job

pytestmark = pytest.mark.faults

THREADS = 8


def test_concurrent_repeats_create_one_job(any_stack):
    stack = any_stack
    body = tiny_job("idempotent", seed=9)
    start = threading.Barrier(THREADS)
    answers: list[tuple[int, str | None]] = []
    lock = threading.Lock()

    def submit() -> None:
        start.wait()
        response = stack.api.submit_response(body, idempotency_key="same-key-from-everyone")
        payload = response.get_json(silent=True) or {}
        with lock:
            answers.append((response.status_code, payload.get("id")))

    threads = [threading.Thread(target=submit) for _ in range(THREADS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)

    assert len(answers) == THREADS
    assert {code for code, _ in answers} == {202}, answers
    assert len({job_id for _, job_id in answers}) == 1, answers
    with stack.factory() as session:
        assert session.scalar(select(func.count()).select_from(Job)) == 1

    different = stack.api.submit_response(
        tiny_job("idempotent", seed=10), idempotency_key="same-key-from-everyone"
    )
    assert different.status_code == 422, different.get_data(as_text=True)
