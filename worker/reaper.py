"""The reaper: a loop in each worker's main process that recovers lost work.

Every ``reaper_interval_seconds`` it reports this worker's slots (the capacity the
dispatcher fills), asks ``service.recovery.recover`` to requeue runs whose lease expired
(their worker died), finish ``cancelling`` jobs whose run is gone and fail jobs that used
up ``max_attempts`` (a poison pill never loops), lets TPE searches make the trials they
have room for, and runs a dispatch pass (``service.dispatch``): it sends what fits in the
free slots, including queued jobs whose message may have been lost (broker down at
submit, a fetched message of a killed worker on the filesystem broker). All of it is
compare-and-set in the database (and passes run one at a time under the dispatcher's
lock), so one reaper per worker on any number of hosts is harmless.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

from sqlalchemy.exc import SQLAlchemyError

from service import heartbeats, queue, recovery, webhooks
from worker.runtime import Runtime
from worker.sweeping import grow_search

log = logging.getLogger(__name__)


def reap(rt: Runtime, slots: int | None = None) -> recovery.Recovery:
    """One pass: report ``slots`` (this worker's pool), fix the database, send what fits."""
    settings = rt.settings
    # deltaflow_workers_alive, and the slots the dispatcher fills (now: the beat's own)
    _beside_recovery("heartbeat", heartbeats.beat, rt.factory, rt.owner, None, slots)
    result = recovery.recover(rt.factory, max_attempts=settings.max_attempts)
    _beside_recovery("webhook relay", relay_webhooks, rt)
    # TPE searches whose next trials were not made when a trial ended (a killed worker).
    grown = grow_search(rt, dispatch_after=False)
    if grown:
        log.info("search trials created=%d", len(grown))
    with rt.factory() as session:
        sent = queue.dispatcher(settings).run(session)
    if result.changed or sent:
        log.info(
            "reaper requeued=%d exhausted=%d cancelled=%d dispatched=%d",
            len(result.requeued),
            len(result.exhausted),
            len(result.cancelled),
            len(sent),
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

    def __init__(self, rt: Runtime, slots: int | None = None) -> None:
        super().__init__(name="deltaflow-reaper", daemon=True)
        self.rt = rt
        self.slots = slots  # this worker's pool, reported with every pass
        self._halt = threading.Event()

    def run(self) -> None:
        interval = self.rt.settings.reaper_interval_seconds
        while True:
            try:
                reap(self.rt, self.slots)
            except SQLAlchemyError:
                log.warning("reaper pass failed (database unavailable?)", exc_info=True)
            except Exception:  # the loop must survive anything; the next pass retries
                log.exception("reaper pass failed")
            if self._halt.wait(interval):
                break
        try:  # a warm stop: gone at once, its slots take no more work
            heartbeats.forget(self.rt.factory, self.rt.owner)
        except SQLAlchemyError:
            log.warning("could not remove this worker's heartbeat", exc_info=True)

    def stop(self) -> None:
        self._halt.set()
        if self.is_alive() and threading.current_thread() is not self:
            self.join(timeout=3)  # let it remove the heartbeat before the process exits
