"""A group of tiny jobs: one message, one claim, one finish (``service.dispatch.pack``).

A tiny job's own work is a few milliseconds; its bookkeeping (a message, a claim's
commit, a finish's commit, a dispatch pass) was most of its cost. A group shares it: the
jobs of one message are claimed in one statement, trained one after the other (each its
own run, fenced by its own attempt, with its own points and model), and finished in one
transaction, which also runs the dispatch pass that refills the slot.

What stays per job: the claim's compare-and-set (a job another run took is skipped), the
fenced finish (a job whose fence moved writes nothing; the others finish), a failure (its
own transaction, at once), a cancel (the finish sees it). A warm shutdown or the task's
time limit between two jobs finishes the trained ones and gives the untouched ones back.
No lease thread runs: every job's lease was set by the claim, and a group's estimated
work (``DELTAFLOW_GROUP_WORK`` × ``DELTAFLOW_GROUP_JOBS``) is far below a lease.
"""

from __future__ import annotations

import logging
import threading

from service import job_claim, job_finish, logs
from service.dispatch import Chosen
from service.queue import dispatcher
from worker.runner import Ran, dispatch_next, send_chosen
from worker.runtime import Runtime, runtime
from worker.sweeping import grow_search
from worker.training_run import Outcome, Run, StopFlag

log = logging.getLogger(__name__)


def run_group(
    job_ids: list[str],
    *,
    stop: StopFlag | None = None,
    time_limit: StopFlag | None = None,
    rt: Runtime | None = None,
) -> list[Ran]:
    """Run one delivery of a group's message; returns each claimed job's ``Ran``."""
    rt = rt or runtime()
    stop = stop or threading.Event()
    settings = rt.settings
    claims = job_claim.claim_many(
        rt.factory,
        job_ids,
        rt.owner,
        lease_seconds=settings.lease_seconds,
        max_attempts=settings.max_attempts,
    )
    if len(claims) < len(job_ids):
        log.info(
            "group of %d: %d not claimable (duplicate delivery or finished)",
            len(job_ids),
            len(job_ids) - len(claims),
        )
    runs: list[Run] = []
    outcomes: dict[str, str] = {}
    time_limit = time_limit or threading.Event()
    for index, claim in enumerate(claims):
        # Warm shutdown, or the task's time limit passed: the untouched jobs go back to the
        # queue (a job failed for a limit its group spent would be failed unfairly).
        if stop.is_set() or time_limit.is_set():
            for rest in claims[index:]:
                outcomes[rest.job_id] = _give_back(rt, rest)
            break
        logs.bind(job_id=claim.job_id, tenant=claim.tenant_id, request_id=claim.request_id)
        log.info("job=%s claimed attempt=%d in a group", claim.job_id, claim.attempt)
        run = Run(rt, claim, stop, time_limit, defer_finish=True)
        outcomes[claim.job_id] = run.execute()
        if outcomes[claim.job_id] == Outcome.trained:
            runs.append(run)
    chosen = _finish(rt, runs, outcomes, growing=any(claim.batch_growing for claim in claims))
    for claim in claims:  # a TPE search makes its next trials as earlier ones end
        if claim.batch_growing and outcomes[claim.job_id] not in _HANDED_BACK:
            grow_search(rt, claim.batch_id, dispatch_after=False)
    if chosen is not None:
        send_chosen(rt, chosen)
    else:
        dispatch_next(rt)
    webhooks = {run.job_id: run.webhooks for run in runs}
    return [Ran(outcomes[c.job_id], webhooks=webhooks.get(c.job_id, True)) for c in claims]


_HANDED_BACK = (Outcome.released, Outcome.exploited)


def _finish(
    rt: Runtime, runs: list[Run], outcomes: dict[str, str], *, growing: bool
) -> Chosen | None:
    """The trained runs' finish, one transaction with the dispatch pass (none while a
    search grows: its pass waits for the new trials), their outcomes into ``outcomes``.
    If it fails, each run is finished alone, patient with the database; the caller then
    runs a pass of its own (None: nothing chosen)."""
    if not runs:
        return None
    finishing = [run.finishing for run in runs if run.finishing is not None]
    try:
        choose = None if growing else dispatcher(rt.settings).choose
        done = job_finish.complete_many(rt.factory, finishing, dispatch=choose)
    except Exception:  # a failed pass never fails the runs (it rolled back with them)
        log.warning("group finish failed; finishing each job alone", exc_info=True)
        done = [
            run.patient(lambda run=run: job_finish.complete_many(rt.factory, [run.finishing])[0])
            for run in runs
        ]
    for run, completed in zip(runs, done, strict=True):
        logs.bind(job_id=run.job_id, tenant=run.claim.tenant_id)
        outcomes[run.job_id] = run.finished(completed)
    return next((d.chosen for d in done if d is not None), None)


def _give_back(rt: Runtime, claim: job_claim.Claim) -> str:
    """A claimed job this group will not run (warm shutdown): queued again, untouched."""
    status = job_finish.release(rt.factory, claim.job_id, claim.attempt)
    log.info("job=%s given back before it started status=%s", claim.job_id, status)
    return Outcome.released if status is not None else Outcome.lost
