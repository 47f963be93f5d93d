"""A TPE search grows from the worker: after a trial's run ends, and in every reaper pass."""

from __future__ import annotations

import logging

from service import searches
from service.queue import dispatcher
from worker.runtime import Runtime

log = logging.getLogger(__name__)


def grow_search(
    rt: Runtime, batch_id: str | None = None, *, dispatch_after: bool = True
) -> list[str]:
    """Create the trials a search has room for (one batch, or every growing one), then run
    a dispatch pass unless the caller runs one next; returns the ids created. Never raises:
    a later reaper pass tries again."""
    try:
        limits = rt.settings.limits
        created = (
            searches.grow(rt.factory, batch_id, limits)
            if batch_id is not None
            else searches.grow_open(rt.factory, limits)
        )
        if created and dispatch_after:
            with rt.factory() as session:
                dispatcher(rt.settings).run(session)
        return [job_id for job_id, _ in created]
    except Exception:
        log.warning(
            "growing a search failed (batch=%s); the reaper retries", batch_id, exc_info=True
        )
        return []
