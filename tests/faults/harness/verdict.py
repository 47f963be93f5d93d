"""The end of every scenario: wait for the jobs, audit them, add the row, assert integrity."""

from __future__ import annotations

from collections.abc import Callable, Sequence

from .integrity import JobAudit, Tally, audit_jobs
from .progress import wait_all_finished
from .reference import references_for
from .stack import Stack

FINISH_SECONDS = 180.0


def settle(
    stack: Stack,
    scenario: str,
    job_ids: Sequence[str],
    record: Callable[[Tally], None],
    timeout: float = FINISH_SECONDS,
) -> tuple[Tally, dict[str, JobAudit]]:
    """Wait until every job is finished, then check each one against an uninterrupted run.

    Asserts what holds for every scenario: no job lost, no epoch missing or duplicated,
    every stored point and every final model equal to the uninterrupted run's.
    """
    try:
        wait_all_finished(stack.factory, job_ids, timeout)
    finally:
        audits = audit_jobs(stack.factory, references_for(stack.factory, stack.settings, job_ids))
        tally = Tally.from_audits(scenario, stack.backend, job_ids, audits)
        record(tally)
    by_id = {audit.id: audit for audit in audits}
    report = "\n".join(repr(by_id[job_id]) for job_id in job_ids if job_id in by_id)
    assert tally.lost == 0, report
    assert tally.duplicated_epochs == 0, report
    assert tally.missing_epochs == 0, report
    assert tally.wrong_points == 0, report
    assert tally.weight_mismatches == 0, report
    return tally, by_id
