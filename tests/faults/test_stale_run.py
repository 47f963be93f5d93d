"""A stale run wakes up: the fencing token keeps it from writing anything.

The whole worker is frozen (SIGSTOP: a VM pause, a long GC, a network partition) past
its lease; another worker's reaper requeues the job and a new run claims it (attempt 2)
and resumes it. Then the frozen worker continues (SIGCONT) with attempt 1 in hand: its
writes are fenced out, and the curve and weights are those of one uninterrupted run.
"""

from __future__ import annotations

import pytest
from sqlalchemy import text, update
from sqlalchemy.exc import DBAPIError

from service.db import make_engine
from service.models import Job
from worker.runtime import end_stuck_transactions

from .harness.progress import job_row, owner_pid, summary, wait_for_running_job
from .harness.specs import EPOCHS, tiny_job
from .harness.verdict import settle
from .harness.waiting import wait_until

pytestmark = pytest.mark.faults


def test_frozen_worker_cannot_write_after_losing_its_lease(pg_stack, record_tally):
    stack = pg_stack
    workers = [stack.start_worker(name, concurrency=1) for name in ("one", "other")]
    job_id = stack.api.submit(tiny_job("stale", seed=0, epochs=3 * EPOCHS, variant=2))
    job = wait_for_running_job(stack.factory, [job_id], min_epoch=30, timeout=60)
    (frozen,) = [w for w in workers if owner_pid(job) in w.pool_children()]
    (successor,) = [w for w in workers if w is not frozen]
    frozen.pause()
    try:
        wait_until(
            lambda: job_row(stack.factory, job_id).attempt >= 2,
            60,
            "the successor to claim the job",
            # Where it stuck, if it does: the job's row and what the live worker did.
            describe=lambda: f"{summary(stack.factory, [job_id])}\n{successor.log_tail(60)}",
        )
    finally:
        frozen.resume()
    tally, audits = settle(stack, "9 stale run (SIGSTOP past lease)", [job_id], record_tally)
    assert tally.succeeded == 1
    assert audits[job_id].attempt == 2
    # Frozen between flushes, the stale run meets its fence at its next write. Frozen inside
    # a flush's transaction, PostgreSQL has ended that session after one lease
    # (worker.runtime), so the run learns it from the lost session instead. Either way it
    # stops, and the audit above shows it wrote nothing.
    stopped = (
        f"job={job_id} attempt=1 lost its fence",
        f"job={job_id} database session ended; leaving it to the reaper",
    )
    wait_until(
        lambda: any(line in frozen.log_text() for line in stopped),
        30,
        "the stale run to notice it lost the job",
        describe=frozen.log_tail,
    )


def test_a_transaction_left_open_by_a_frozen_worker_ends_after_a_lease(pg_stack):
    """The deterministic core of the scenario above: a worker connection that holds a job's
    row lock inside an idle transaction (the process froze mid-flush) is ended by
    PostgreSQL after one lease, so the reaper's UPDATE gets the row instead of waiting."""
    stack = pg_stack
    job_id = stack.api.submit(tiny_job("locked", seed=0))
    frozen_engine = make_engine(stack.settings.database_url)
    end_stuck_transactions(frozen_engine, lease_seconds=1.0)
    try:
        frozen = frozen_engine.connect()
        frozen.execute(update(Job).where(Job.id == job_id).values(version=Job.version + 1))
        # ...and the process stops here, holding the row lock, transaction open.
        with stack.engine.connect() as reaper:
            reaper.execute(text("SET lock_timeout = '30s'"))  # fail, never hang, if unfixed
            won = reaper.execute(
                update(Job).where(Job.id == job_id).values(lease_owner="reaper")
            ).rowcount
            reaper.commit()
        assert won == 1
        # The frozen session was ended by the server; the runner sees a lost connection
        # (an outage: leave the job to the reaper), not an error of the job.
        with pytest.raises(DBAPIError) as ended:
            frozen.execute(text("SELECT 1"))
        assert ended.value.connection_invalidated
    finally:
        frozen.invalidate()
        frozen.close()
        frozen_engine.dispose()
