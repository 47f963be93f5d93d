"""Dispatch: send committed, queued jobs to the broker, then record that they were sent.

The one send-and-record loop, used by job submit, batch submit, the reaper and a warm
shutdown's release. Sending happens after the commit (a worker must find the job), by
task name with only the job id. The first failed send stops the loop: the broker is
down, and the reaper sends the rest later, instead of the caller waiting out one timeout
per job. A job whose message is lost stays ``queued``; the database is the source of
truth and the reaper re-sends it (``service.recovery``).

The sender is passed in (``service.queue.sender(settings)``), so this module and the
commands that call it stay free of Celery. The coming fair dispatcher (rate limits,
quotas, per-tenant order) belongs here.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable

from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session

from service import lifecycle

log = logging.getLogger(__name__)

# ``send(job_id, queue) -> bool``: publish one training message; False when it failed.
Sender = Callable[[str, str], bool]


def dispatch(session: Session, send: Sender, jobs: Iterable[tuple[str, str]]) -> list[str]:
    """Send each ``(job_id, queue)`` in order until a send fails; record the sent ones.

    Recording ``dispatched_at`` is one UPDATE (only of jobs still queued) and a commit of
    ``session``; when the database refuses it, the jobs are sent anyway and only the
    timestamp is lost. Returns the ids that were sent.
    """
    sent: list[str] = []
    for job_id, queue in jobs:
        if not send(job_id, queue):
            break
        sent.append(job_id)
    if not sent:
        return sent
    try:
        lifecycle.mark_dispatched(session, sent)
        session.commit()
    except DBAPIError:
        session.rollback()
        log.warning("could not record dispatched_at for %d job(s)", len(sent), exc_info=True)
    return sent
