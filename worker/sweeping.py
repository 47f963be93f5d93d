"""A TPE search grows from the worker: after a trial's run ends, and in every reaper pass."""

from __future__ import annotations

import logging

from service import searches
from service.dispatch import dispatch
from service.queue import sender
from worker.runtime import Runtime

log = logging.getLogger(__name__)


def grow_search(rt: Runtime, batch_id: str | None = None) -> list[str]:
    """Create and send the trials a search has room for (one batch, or every growing one);
    returns the ids sent. Never raises: a later reaper pass tries again."""
    try:
        limits = rt.settings.limits
        created = (
            searches.grow(rt.factory, batch_id, limits)
            if batch_id is not None
            else searches.grow_open(rt.factory, limits)
        )
        if not created:
            return []
        with rt.factory() as session:
            return dispatch(session, sender(rt.settings), created)
    except Exception:
        log.warning(
            "growing a search failed (batch=%s); the reaper retries", batch_id, exc_info=True
        )
        return []
