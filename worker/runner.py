"""One delivery of a training message: claim the job (a compare-and-set that bumps
``attempt``: a second delivery of the same message finds it taken and does nothing), run
it (``worker.training_run``), then refill the slot with a dispatch pass. A message of a
group of tiny jobs is ``worker.groups``.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass

from service import job_claim, logs
from service.dispatch import Chosen
from service.queue import dispatcher
from worker.runtime import Runtime, runtime
from worker.sweeping import grow_search
from worker.training_run import Outcome, Run, StopFlag

__all__ = ["Outcome", "Ran", "StopFlag", "dispatch_next", "run_delivery", "run_job", "send_chosen"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Ran:
    """What one delivery did: its ``Outcome``, and whether its end may have written
    webhook deliveries (only then does the task relay them at once; the reaper's relay
    sends any it missed)."""

    outcome: str
    webhooks: bool = True


def run_job(
    job_id: str,
    *,
    stop: StopFlag | None = None,
    time_limit: StopFlag | None = None,
    rt: Runtime | None = None,
) -> str:
    """Run one delivery of a training message; returns its ``Outcome`` (``run_delivery``)."""
    return run_delivery(job_id, stop=stop, time_limit=time_limit, rt=rt).outcome


def run_delivery(
    job_id: str,
    *,
    stop: StopFlag | None = None,
    time_limit: StopFlag | None = None,
    rt: Runtime | None = None,
) -> Ran:
    """Run one delivery of a training message.

    ``stop`` turns on at warm shutdown (checkpoint and release); ``time_limit`` when the
    soft time limit passed (fail with ``time_limit``). Both are read between epochs.
    """
    rt = rt or runtime()
    settings = rt.settings
    claim = job_claim.claim(
        rt.factory,
        job_id,
        rt.owner,
        lease_seconds=settings.lease_seconds,
        max_attempts=settings.max_attempts,
    )
    if claim is None:
        log.info("job=%s not claimable (duplicate delivery or finished); nothing to do", job_id)
        return Ran(Outcome.skipped, webhooks=False)
    logs.bind(tenant=claim.tenant_id)
    log.info(
        "job=%s claimed attempt=%d resume_from=%s", job_id, claim.attempt, claim.checkpoint_epoch
    )
    run = Run(rt, claim, stop or threading.Event(), time_limit or threading.Event())
    outcome = run.execute()
    # A TPE search makes its next trials as earlier ones end (other batches never grow).
    if claim.batch_growing and outcome not in (Outcome.released, Outcome.exploited):
        grow_search(rt, claim.batch_id, dispatch_after=False)
    # This slot is free (or the job is queued again): fill it fairly. A succeeded run's
    # finish chose in its own transaction; what it chose is sent now, after its commit.
    if run.chosen is not None:
        send_chosen(rt, run.chosen)
    else:
        dispatch_next(rt)
    return Ran(outcome, webhooks=run.webhooks and outcome != Outcome.lost)


def dispatch_next(rt: Runtime) -> list[str]:
    """A dispatch pass after a run (``service.dispatch``); never raises."""
    try:
        with rt.factory() as session:
            return dispatcher(rt.settings).run(session)
    except Exception:  # the reaper's pass sends it instead
        log.warning("dispatch after the run failed", exc_info=True)
        return []


def send_chosen(rt: Runtime, chosen: Chosen) -> list[str]:
    """Send what the pass inside a run's finish chose (committed with it); never raises."""
    try:
        with rt.factory() as session:  # used only to give back jobs whose send failed
            return dispatcher(rt.settings).send_chosen(session, chosen)
    except Exception:  # they are sent again once their dispatch is stale
        log.warning("dispatch after the run failed", exc_info=True)
        return []
