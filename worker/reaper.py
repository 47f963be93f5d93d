"""The reaper: a loop in each worker's main process that recovers lost work.

Every ``reaper_interval_seconds`` it asks ``service.recovery.recover`` to requeue runs whose
lease expired (their worker died), finish ``cancelling`` jobs whose run is gone, fail
jobs that used up ``max_attempts`` (a poison pill never loops), and re-send queued jobs
whose message may have been lost (broker down at submit, a fetched message of a killed
worker on the filesystem broker), and lets TPE searches make the trials they have room
for. All of it is compare-and-set in the database, so one
reaper per worker on any number of hosts is harmless: each job is recovered once.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

from sqlalchemy.exc import SQLAlchemyError

from service import heartbeats, queue, recovery, webhooks
from service.dispatch import dispatch
from worker.runtime import Runtime
from worker.sweeping import grow_search

log = logging.getLogger(__name__)


def reap(rt: Runtime) -> recovery.Recovery:
    """One pass: fix the database, then send the messages it asks for."""
    settings = rt.settings
    _beside_recovery("heartbeat", heartbeats.beat, rt.factory, rt.owner)  # workers_alive
    result = recovery.recover(
        rt.factory,
        max_attempts=settings.max_attempts,
        requeue_after_seconds=settings.requeue_after_seconds,
    )
    with rt.factory() as session:
        sent = dispatch(session, queue.sender(settings), result.dispatch)
    if len(sent) < len(result.dispatch):
        log.warning(
            "reaper could send %d of %d job(s); the rest are sent again later",
            len(sent),
            len(result.dispatch),
        )
    _beside_recovery("webhook relay", relay_webhooks, rt)
    # TPE searches whose next trials were not made when a trial ended (a killed worker).
    grown = grow_search(rt)
    if grown:
        log.info("search trials created=%d", len(grown))
    if result.changed:
        log.info(
            "reaper requeued=%d exhausted=%d cancelled=%d dispatched=%d",
            len(result.requeued),
            len(result.exhausted),
            len(result.cancelled),
            len(result.dispatch),
        )
    return result


def _beside_recovery(what: str, step: Callable[..., object], *args: object) -> None:
    """The heartbeat and the webhook relay must never keep a pass from recovering jobs or
    growing searches: a failure of theirs is logged and the pass goes on."""
    try:
        step(*args)
    except SQLAlchemyError:
        log.warning("reaper: %s failed (database unavailable?)", what, exc_info=True)


def relay_webhooks(rt: Runtime) -> int:
    """Send a task for each webhook delivery that is due (first tries, retries after their
    back-off, those whose worker died mid-attempt; ``service.webhooks.due``). Each reaper
    pass does, and so does a run that just ended, so its events leave at once."""
    sent = 0
    for delivery_id in webhooks.due(rt.factory, rt.settings):
        if not queue.send_delivery(rt.settings, delivery_id):
            break  # the broker is down: the next pass sends them again
        sent += 1
    return sent


class Reaper(threading.Thread):
    """Runs ``reap`` now and then every interval until stopped."""

    def __init__(self, rt: Runtime) -> None:
        super().__init__(name="deltaflow-reaper", daemon=True)
        self.rt = rt
        self._halt = threading.Event()

    def run(self) -> None:
        interval = self.rt.settings.reaper_interval_seconds
        while True:
            try:
                reap(self.rt)
            except SQLAlchemyError:
                log.warning("reaper pass failed (database unavailable?)", exc_info=True)
            except Exception:  # the loop must survive anything; the next pass retries
                log.exception("reaper pass failed")
            if self._halt.wait(interval):
                break
        try:
            heartbeats.forget(self.rt.factory, self.rt.owner)  # a warm stop: gone at once
        except SQLAlchemyError:
            log.warning("could not remove this worker's heartbeat", exc_info=True)

    def stop(self) -> None:
        self._halt.set()
        if self.is_alive() and threading.current_thread() is not self:
            self.join(timeout=3)  # let it remove the heartbeat before the process exits
