"""Send committed jobs to the broker and record it; a broker outage leaves them queued."""

from __future__ import annotations

import logging
from collections.abc import Iterable

from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session

from service import jobs, queue
from service.config import Settings
from service.models import Job

log = logging.getLogger(__name__)


def dispatch(settings: Settings, session: Session, batch: Iterable[Job]) -> int:
    """Publish one message per job (after the commit!); return how many were sent.

    A job whose send fails stays ``queued`` without ``dispatched_at``; the reaper sends it.
    """
    sent = 0
    for job in batch:
        if queue.send_train(settings, job.id, job.queue):
            jobs.mark_dispatched(session, job.id)
            sent += 1
    if sent:
        try:
            session.commit()
        except DBAPIError:  # the jobs are committed and sent; only the timestamp is lost
            session.rollback()
            log.warning("could not record dispatched_at for %d job(s)", sent, exc_info=True)
    return sent
