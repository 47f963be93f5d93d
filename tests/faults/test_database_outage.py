"""Scenario 6: PostgreSQL stopped for 10 s while jobs run and clients poll the API.

During the outage the API answers 503 problem+json with Retry-After — never a 500 — and
it recovers by itself when the database is back; runs keep their unsaved epochs and
write them later (or lose their lease and are resumed), and every job finishes.
"""

from __future__ import annotations

import threading
import time
from collections import Counter

import pytest

from .harness.api import Api
from .harness.progress import wait_for_epochs
from .harness.specs import EPOCHS, tiny_job
from .harness.verdict import settle
from .harness.waiting import wait_until

pytestmark = pytest.mark.faults

OUTAGE_SECONDS = 10.0  # the fault's length is part of the scenario, not an assertion


class Poller(threading.Thread):
    """A dashboard-like client: reads a job, the job list and a curve in a loop.

    Every answer is kept as (during_outage, status code, mimetype, Retry-After, body status).
    """

    def __init__(self, api: Api, job_id: str) -> None:
        super().__init__(name="api-poller", daemon=True)
        self.api = api
        self.paths = [f"/jobs/{job_id}", "/jobs?limit=5", f"/jobs/{job_id}/curve"]
        self.answers: list[tuple[bool, int, str, str | None, int | None]] = []
        self.outage = threading.Event()
        self.halt = threading.Event()

    def run(self) -> None:
        turn = 0
        while not self.halt.is_set():
            self.answers.append(self._ask(self.paths[turn % len(self.paths)]))
            turn += 1
            self.halt.wait(0.05)

    def _ask(self, path: str) -> tuple[bool, int, str, str | None, int | None]:
        during_outage = self.outage.is_set()
        try:
            response = self.api.get(path)
        except Exception as exc:  # an exception escaping Flask: recorded as code 0
            return (during_outage, 0, repr(exc), None, None)
        body = response.get_json(silent=True) or {}
        return (
            during_outage,
            response.status_code,
            response.mimetype,
            response.headers.get("Retry-After"),
            body.get("status") if response.status_code >= 400 else None,
        )


def test_postgres_stopped_for_ten_seconds(pg_stack, throwaway_postgres, record_tally):
    stack = pg_stack
    stack.start_worker("patient")
    job_ids = [stack.api.submit(tiny_job(f"pg-down-{i}", seed=i % 4, variant=i)) for i in range(6)]
    poller = Poller(stack.api, job_ids[0])
    poller.start()
    try:
        wait_for_epochs(stack.factory, job_ids, total=len(job_ids) * EPOCHS // 4, timeout=120)
        throwaway_postgres.stop()
        poller.outage.set()
        time.sleep(OUTAGE_SECONDS)
        throwaway_postgres.start()
        wait_until(
            lambda: stack.api.get(f"/jobs/{job_ids[0]}").status_code == 200,
            60,
            "the API to answer 200 again",
        )
        poller.outage.clear()
        tally, _ = settle(stack, "6 PostgreSQL down 10 s", job_ids, record_tally)
    finally:
        poller.halt.set()
        poller.join(timeout=10)
    assert tally.succeeded == len(job_ids)

    codes = Counter(code for _, code, *_ in poller.answers)
    assert codes[500] == 0, codes
    assert codes[0] == 0, [a for a in poller.answers if a[1] == 0][:3]
    assert set(codes) <= {200, 503}, codes
    unavailable = [a for a in poller.answers if a[1] == 503]
    assert any(during for during, *_ in unavailable), f"no 503 during the outage: {codes}"
    for _during, _code, mimetype, retry_after, status in unavailable:
        assert mimetype == "application/problem+json"
        assert retry_after is not None
        assert int(retry_after) > 0
        assert status == 503
    # It recovered by itself: the last answers (after the restart) are 200 again.
    assert poller.answers[-1][1] == 200, poller.answers[-5:]
