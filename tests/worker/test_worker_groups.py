"""A group of tiny jobs (worker.groups.run_group) inside the test process, on real SQLite
and PostgreSQL (no Celery involved): one claim, each job its own fenced run, one finish.

What happens between two jobs of a group (a cancel, a moved fence, a warm shutdown) is
injected at that point by wrapping the group's runs (``after_each_run``), never by timing.
"""

from __future__ import annotations

import threading
from collections.abc import Callable

import numpy as np
import pytest
from sqlalchemy import select, update

from service import counters, job_claim, job_transitions
from service.db import transaction
from service.models import Job, JobSummary, TrainedModel, curve_levels
from service.schemas.names import FINISHED
from tests.support.jobs import (
    curve_epochs,
    curve_losses,
    diverging_spec,
    insert_job,
    job_row,
    model_arrays,
    tiny_spec,
    wait_for,
)
from worker import groups
from worker.groups import run_group
from worker.runner import Outcome, run_job

pytestmark = pytest.mark.integration

EPOCHS = 12


def tiny_jobs(factory, seeds) -> list[str]:
    """Queued tiny jobs, one per training seed (so each has a model of its own)."""
    return [insert_job(factory, tiny_spec(epochs=EPOCHS, seed=seed)) for seed in seeds]


def outcomes(ran) -> list[str]:
    return [one.outcome for one in ran]


def has_model(factory, job_id: str) -> bool:
    with transaction(factory) as session:
        return session.get(TrainedModel, job_id) is not None


def untouched_by(factory, job_id: str) -> bool:
    """The run wrote nothing of its own: no point, no progress, no model."""
    job = job_row(factory, job_id)
    return (
        curve_epochs(factory, job_id) == []
        and job.epoch == 0
        and job.metrics is None
        and not has_model(factory, job_id)
    )


def assert_succeeded_once(factory, job_id: str, attempt: int = 1) -> None:
    job = job_row(factory, job_id)
    assert (job.status, job.attempt, job.epoch) == ("succeeded", attempt, EPOCHS), job
    assert job.lease_owner is None
    assert job.metrics["epoch"] == EPOCHS
    assert curve_epochs(factory, job_id) == list(range(1, EPOCHS + 1))
    assert has_model(factory, job_id)


def summary_row(factory, job_id: str) -> dict:
    table = JobSummary.__table__
    with transaction(factory) as session:
        row = session.execute(select(table).where(table.c.job_id == job_id)).one()
    return {k: v for k, v in row._mapping.items() if k not in ("job_id", "tenant_id")}


def level_rows(factory, job_id: str) -> list[dict]:
    with transaction(factory) as session:
        rows = session.execute(
            select(curve_levels)
            .where(curve_levels.c.job_id == job_id)
            .order_by(curve_levels.c.level, curve_levels.c.block)
        ).all()
    assert rows, f"job {job_id} has no curve levels"
    # Every column but the job and the epochs' wall-clock seconds (which differ run to run).
    return [
        {k: v for k, v in row._mapping.items() if k != "job_id" and not k.startswith("seconds")}
        for row in rows
    ]


def counted(factory) -> dict[tuple[str, str], float]:
    with transaction(factory) as session:
        return counters.totals(session.connection())


def after_each_run(monkeypatch, hook: Callable[[str, str], None]) -> None:
    """Call ``hook(job_id, outcome)`` after each run of a group trained (its finish is
    still to come: the group finishes its runs together)."""

    class Hooked(groups.Run):
        def execute(self) -> str:
            outcome = super().execute()
            hook(self.job_id, outcome)
            return outcome

    monkeypatch.setattr(groups, "Run", Hooked)


def steal(factory, job_id: str) -> None:
    """What the reaper and another worker's claim do to a run whose lease expired: the
    attempt moves on, another owner holds the job."""
    with transaction(factory) as session:
        session.execute(
            update(Job)
            .where(Job.id == job_id)
            .values(attempt=Job.attempt + 1, lease_owner="thief:1", status="running")
        )


def request_cancel(factory, job_id: str) -> None:
    """The API's cancel of a running job (``service.jobs.cancel_job``)."""
    with transaction(factory) as session:
        assert job_transitions.request_cancel(session, job_id, "running")


def test_each_job_of_a_group_is_its_own_run_with_its_own_model(backend):
    factory = backend.factory
    seeds = [0, 1, 2, 3]
    job_ids = tiny_jobs(factory, seeds)
    before = counted(factory)
    ran = run_group(job_ids, rt=backend.runtime())
    assert outcomes(ran) == [Outcome.succeeded] * 4
    for job_id in job_ids:
        assert_succeeded_once(factory, job_id)
    weights = [model_arrays(factory, job_id) for job_id in job_ids]
    assert not np.array_equal(weights[0]["W0"], weights[1]["W0"])  # each its own model
    # The group's finish counted every job's epochs and run once, in one addition.
    after = counted(factory)
    epochs = after[(counters.EPOCHS, "")] - before.get((counters.EPOCHS, ""), 0.0)
    assert epochs == 4 * EPOCHS
    runs = (counters.DURATION + "_count", "status=succeeded")
    assert after[runs] - before.get(runs, 0.0) == 4
    # Nothing leaks from one run of the group to the next: the same job run alone trains
    # the same curve and the same weights. Run alone flushing every epoch, its summary and
    # curve levels are merged point by point; the group wrote its jobs' all at once:
    # the same rows either way.
    (alone,) = tiny_jobs(factory, [seeds[2]])
    assert run_job(alone, rt=backend.runtime(flush_seconds=0)) == Outcome.succeeded
    assert curve_losses(factory, alone) == curve_losses(factory, job_ids[2])
    solo = model_arrays(factory, alone)
    for name, array in weights[2].items():
        assert np.array_equal(solo[name], array), name
    assert summary_row(factory, alone) == summary_row(factory, job_ids[2])
    assert level_rows(factory, alone) == level_rows(factory, job_ids[2])


def test_a_duplicate_delivery_of_a_group_does_nothing(backend):
    factory = backend.factory
    job_ids = tiny_jobs(factory, [0, 1, 2])
    assert outcomes(run_group(job_ids, rt=backend.runtime())) == [Outcome.succeeded] * 3
    before = [job_row(factory, job_id) for job_id in job_ids]
    assert run_group(job_ids, rt=backend.runtime()) == []  # none claimable: all skipped
    after = [job_row(factory, job_id) for job_id in job_ids]
    assert [(j.attempt, j.version, j.status) for j in after] == [
        (j.attempt, j.version, j.status) for j in before
    ]
    for job_id in job_ids:
        assert curve_epochs(factory, job_id) == list(range(1, EPOCHS + 1))


def test_a_job_another_run_holds_is_skipped_and_the_rest_run(backend):
    factory = backend.factory
    job_ids = tiny_jobs(factory, [0, 1, 2])
    other = job_claim.claim(factory, job_ids[1], "other:1", lease_seconds=60, max_attempts=3)
    assert other is not None
    ran = run_group(job_ids, rt=backend.runtime())
    assert outcomes(ran) == [Outcome.succeeded] * 2  # the two this group claimed
    assert_succeeded_once(factory, job_ids[0])
    assert_succeeded_once(factory, job_ids[2])
    held = job_row(factory, job_ids[1])
    assert (held.status, held.attempt, held.lease_owner) == ("running", 1, "other:1")
    assert untouched_by(factory, job_ids[1])


def test_a_job_whose_fence_moved_writes_nothing_and_the_others_finish(backend, monkeypatch):
    """The first job's fence moves after it trained, before the group's finish: that
    finish writes nothing for it and still finishes the others in its transaction."""
    factory = backend.factory
    job_ids = tiny_jobs(factory, [0, 1, 2])
    before = counted(factory)

    def move_the_first_fence(job_id: str, outcome: str) -> None:
        if job_id == job_ids[0]:
            assert outcome == Outcome.trained
            steal(factory, job_id)

    after_each_run(monkeypatch, move_the_first_fence)
    ran = run_group(job_ids, rt=backend.runtime())
    assert outcomes(ran) == [Outcome.lost, Outcome.succeeded, Outcome.succeeded]
    lost = job_row(factory, job_ids[0])
    assert (lost.status, lost.attempt, lost.lease_owner) == ("running", 2, "thief:1")
    assert untouched_by(factory, job_ids[0])
    for job_id in job_ids[1:]:
        assert_succeeded_once(factory, job_id)
    after = counted(factory)
    epochs = after[(counters.EPOCHS, "")] - before.get((counters.EPOCHS, ""), 0.0)
    assert epochs == 2 * EPOCHS  # the lost run's epochs are not counted


def test_a_group_whose_every_fence_moved_writes_nothing(backend, monkeypatch):
    factory = backend.factory
    job_ids = tiny_jobs(factory, [0, 1])
    after_each_run(monkeypatch, lambda job_id, outcome: steal(factory, job_id))
    assert outcomes(run_group(job_ids, rt=backend.runtime())) == [Outcome.lost] * 2
    for job_id in job_ids:
        assert job_row(factory, job_id).attempt == 2
        assert untouched_by(factory, job_id)


def test_a_cancel_requested_during_the_group_ends_that_job_cancelled(backend, monkeypatch):
    """A cancel of a trained job waiting for the group's finish, and of a claimed job not
    yet started: both end cancelled (no model); the third job succeeds."""
    factory = backend.factory
    job_ids = tiny_jobs(factory, [0, 1, 2])

    def cancel_two(job_id: str, outcome: str) -> None:
        if job_id == job_ids[0]:
            request_cancel(factory, job_ids[0])  # trained, its finish still to come
            request_cancel(factory, job_ids[1])  # claimed, not started

    after_each_run(monkeypatch, cancel_two)
    ran = run_group(job_ids, rt=backend.runtime())
    assert outcomes(ran) == [Outcome.cancelled, Outcome.cancelled, Outcome.succeeded]
    for job_id in job_ids[:2]:
        job = job_row(factory, job_id)
        assert (job.status, job.attempt, job.lease_owner) == ("cancelled", 1, None)
        assert job.finished_at is not None
        assert not has_model(factory, job_id)
    assert_succeeded_once(factory, job_ids[2])


def test_a_cancel_stops_a_long_job_of_a_group_and_the_next_one_runs(backend):
    factory = backend.factory
    long_job = insert_job(factory, tiny_spec(epochs=100_000))
    (short,) = tiny_jobs(factory, [5])
    ran: list = []
    runner = threading.Thread(
        target=lambda: ran.extend(run_group([long_job, short], rt=backend.runtime()))
    )
    runner.start()
    wait_for(lambda: job_row(factory, long_job).epoch > 0, what="the long job's first flush")
    request_cancel(factory, long_job)
    runner.join(timeout=60)
    assert not runner.is_alive()
    assert outcomes(ran) == [Outcome.cancelled, Outcome.succeeded]
    job = job_row(factory, long_job)
    assert job.status == "cancelled"
    assert curve_epochs(factory, long_job) == list(range(1, job.epoch + 1))
    assert_succeeded_once(factory, short)


def test_a_failing_job_fails_alone_and_the_others_succeed(backend):
    factory = backend.factory
    first, second = tiny_jobs(factory, [0, 1])
    diverging = insert_job(factory, diverging_spec())
    ran = run_group([first, diverging, second], rt=backend.runtime())
    assert outcomes(ran) == [Outcome.succeeded, Outcome.failed, Outcome.succeeded]
    failed = job_row(factory, diverging)
    assert (failed.status, failed.error["type"]) == ("failed", "non_finite")
    assert not has_model(factory, diverging)
    assert_succeeded_once(factory, first)
    assert_succeeded_once(factory, second)


def test_a_warm_shutdown_before_the_group_gives_every_job_back(backend):
    factory = backend.factory
    job_ids = tiny_jobs(factory, [0, 1, 2])
    stop = threading.Event()
    stop.set()
    ran = run_group(job_ids, stop=stop, rt=backend.runtime())
    assert outcomes(ran) == [Outcome.released] * 3
    for job_id in job_ids:
        job = job_row(factory, job_id)
        # Handed back, not lost: queued again, no strike against max_attempts.
        assert (job.status, job.attempt, job.releases, job.lease_owner) == ("queued", 1, 1, None)
        assert untouched_by(factory, job_id)
    # The next delivery runs them all from the start.
    assert outcomes(run_group(job_ids, rt=backend.runtime())) == [Outcome.succeeded] * 3
    for job_id in job_ids:
        assert_succeeded_once(factory, job_id, attempt=2)


def test_a_spent_time_limit_gives_the_untouched_jobs_back_instead_of_failing_them(
    backend, monkeypatch
):
    """The task's soft time limit is the group's, not a job's: once it passed, the jobs
    not started yet go back to the queue (no strike) rather than fail ``time_limit``."""
    factory = backend.factory
    job_ids = tiny_jobs(factory, [0, 1, 2])
    time_limit = threading.Event()
    after_each_run(monkeypatch, lambda job_id, outcome: time_limit.set())  # after the first
    ran = run_group(job_ids, time_limit=time_limit, rt=backend.runtime())
    assert outcomes(ran) == [Outcome.succeeded, Outcome.released, Outcome.released]
    assert_succeeded_once(factory, job_ids[0])
    for job_id in job_ids[1:]:
        job = job_row(factory, job_id)
        assert (job.status, job.attempt, job.releases, job.error) == ("queued", 1, 1, None)
        assert untouched_by(factory, job_id)


def test_a_warm_shutdown_between_jobs_finishes_the_trained_and_gives_back_the_rest(
    backend, monkeypatch
):
    factory = backend.factory
    job_ids = tiny_jobs(factory, [0, 1, 2])
    stop = threading.Event()
    after_each_run(monkeypatch, lambda job_id, outcome: stop.set())  # after the first job
    ran = run_group(job_ids, stop=stop, rt=backend.runtime())
    assert outcomes(ran) == [Outcome.succeeded, Outcome.released, Outcome.released]
    assert_succeeded_once(factory, job_ids[0])
    for job_id in job_ids[1:]:
        job = job_row(factory, job_id)
        assert (job.status, job.releases) == ("queued", 1)
        assert untouched_by(factory, job_id)


def test_a_group_dispatches_the_next_jobs_in_its_finish(backend):
    """The group's finish runs one dispatch pass: the waiting tiny jobs are sent, grouped."""
    factory = backend.factory
    with transaction(factory) as session:  # earlier tests' unfinished jobs hold no slot
        session.execute(update(Job).where(Job.status.not_in(FINISHED)).values(status="failed"))
    job_ids = tiny_jobs(factory, [0, 1])
    waiting = [
        insert_job(factory, tiny_spec(epochs=EPOCHS), tenant="waiting", work=1_000)
        for _ in range(3)
    ]
    assert all(job_row(factory, job_id).dispatched_at is None for job_id in waiting)
    run_group(job_ids, rt=backend.runtime())
    rows = [job_row(factory, job_id) for job_id in waiting]
    assert all(row.dispatched_at is not None for row in rows)
    keys = [row.dispatch_group for row in rows]
    assert keys[0] is not None
    assert keys == [keys[0]] * 3
