"""Hosts whose clocks are wrong: leases are decided on the database's clock, not theirs.

Two workers run under libfaketime (Debian's ``faketime`` package, ``LD_PRELOAD``): one
10 minutes slow, one 10 minutes fast. Each runs one long job (the slow one from the
``interactive`` queue, the fast one from ``batch``) for seconds while both reapers pass
every 0.5 s (a 10 s lease). Had the leases been written and compared with the hosts'
clocks, the slow worker's leases would look 10 minutes expired to everyone and the fast
worker's reaper would see every other lease as expired: jobs would be taken from live
runs (attempt 2). With leases on the database's clock neither worker loses its own job
nor takes the other's: both jobs end with attempt 1, no run loses its fence, and every
point and weight equals an uninterrupted run's.

PostgreSQL only: on SQLite the database's clock is the clock of whichever process runs
the statement (the embedded default is one machine).
"""

from __future__ import annotations

import re
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.support.fixtures import unavailable

from .harness.api import API
from .harness.progress import job_row, persisted_epochs
from .harness.specs import EPOCHS, tiny_job
from .harness.stack import VENV_BIN
from .harness.verdict import settle
from .harness.waiting import wait_until

pytestmark = pytest.mark.faults

SKEW_SECONDS = 600  # 10 minutes
# Longer than the suite's 3 s, so a run starved of CPU on a busy machine keeps its lease;
# still 60 times shorter than the skew, which any lease compared on host clocks loses to.
LEASE = {"DELTAFLOW_LEASE_SECONDS": "10"}
LIBFAKETIME = [
    Path("/usr/lib/x86_64-linux-gnu/faketime/libfaketime.so.1"),
    Path("/usr/lib/aarch64-linux-gnu/faketime/libfaketime.so.1"),
    Path("/usr/lib/faketime/libfaketime.so.1"),
]


def faketime_env(offset_seconds: int) -> dict[str, str]:
    """Environment that shifts a process's wall clock by ``offset_seconds`` (libfaketime).

    The monotonic clock is left alone (a run measures its lease's lapse with it; a shift
    would not matter, but real durations keep the test about wall clocks only).
    """
    library = next((path for path in LIBFAKETIME if path.exists()), None)
    if library is None:
        unavailable("libfaketime is not installed (Debian package `faketime`; `make faketime`)")
    return {
        "LD_PRELOAD": str(library),
        "FAKETIME": f"{offset_seconds:+d}",
        "DONT_FAKE_MONOTONIC": "1",
    }


def faked_offset(env: dict[str, str]) -> float:
    """How far a process started with ``env`` sees the wall clock from ours."""
    code = "import time; print(time.time())"
    before = time.time()
    seen = float(subprocess.check_output([sys.executable, "-c", code], env=env, text=True))
    return seen - (before + time.time()) / 2


def test_workers_with_skewed_clocks_keep_their_own_jobs(pg_stack, record_tally):
    stack = pg_stack
    slow, fast = faketime_env(-SKEW_SECONDS), faketime_env(+SKEW_SECONDS)
    # The skew really reaches a process started this way (else this test proves nothing).
    assert faked_offset({**stack.env, **slow}) == pytest.approx(-SKEW_SECONDS, abs=60)
    assert faked_offset({**stack.env, **fast}) == pytest.approx(+SKEW_SECONDS, abs=60)

    workers = {}
    for name, queue, env in (("slow", "interactive", slow), ("fast", "batch", fast)):
        command = [
            str(VENV_BIN / "deltaflow"), "worker", "--concurrency", "1",
            "--queues", queue, "--hostname", f"{name}@%h",
        ]  # fmt: skip
        env = {**env, **LEASE}
        workers[name] = stack.start_worker(name, concurrency=1, command=command, env=env)

    epochs = 3 * EPOCHS  # seconds each: many reaper passes (0.5 s) and flushes (0.2 s)
    single = stack.api.submit(tiny_job("skew-interactive", seed=1, epochs=epochs))
    with stack.api.client() as client:
        response = client.post(
            f"{API}/batches",
            json={"name": "skew", "jobs": [tiny_job("skew-batch", seed=2, epochs=epochs)]},
            headers=stack.api.headers,
        )
    assert response.status_code == 202, response.get_data(as_text=True)
    (batched,) = response.get_json()["job_ids"]
    jobs = [single, batched]

    # Both run at once, for several leases: time for a wrong reaper to strike.
    wait_until(
        lambda: all(job_row(stack.factory, j).epoch >= EPOCHS for j in jobs),
        120,
        "both jobs to be well under way",
        describe=lambda: "\n".join(w.log_tail(10) for w in workers.values()),
    )
    assert persisted_epochs(stack.factory, jobs) < 2 * epochs  # still running, both

    tally, audits = settle(stack, "10 clock skew (hosts -10 min, +10 min)", jobs, record_tally)
    assert tally.succeeded == 2
    assert [audits[j].attempt for j in jobs] == [1, 1]
    slow_log, fast_log = workers["slow"].log_text(), workers["fast"].log_text()
    assert f"job={single} claimed attempt=1" in slow_log
    assert f"job={batched} claimed attempt=1" in fast_log
    for text in (slow_log, fast_log):
        assert "lost its fence" not in text
        assert re.search(r"reaper requeued=[1-9]", text) is None
