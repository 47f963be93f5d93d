"""The lease keeper of a run: a thread that extends the lease between flushes.

It only sets flags; the training loop (``worker.runner``) reads them between epochs.
"""

from __future__ import annotations

import logging
import threading
import time

from sqlalchemy.exc import InterfaceError, OperationalError

from service import job_progress
from service.job_claim import Claim
from worker.runtime import Runtime

log = logging.getLogger(__name__)


class LeaseKeeper(threading.Thread):
    """Extends the lease between flushes (long epochs) and notices cancel or a lost fence.

    It only sets flags; the training loop reads them between epochs. A run that could not
    extend its lease for a whole lease period (database unreachable from here) stops:
    the job may already belong to another run, and its writes would be fenced off anyway.
    """

    def __init__(self, rt: Runtime, claim: Claim) -> None:
        super().__init__(name=f"lease-{claim.job_id[:8]}", daemon=True)
        self.rt = rt
        self.claim = claim
        # Often enough that two missed beats still leave the lease alive; at most every
        # 5 s so a pending cancel is noticed during long epochs too.
        self.interval = max(0.1, min(rt.settings.lease_seconds / 3, 5.0))
        self.lost = False
        self.cancel_requested = False
        self.last_alive = time.monotonic()  # the claim itself set the lease
        self._halt = threading.Event()

    def run(self) -> None:
        while not self._halt.wait(self.interval):
            try:
                pulse = job_progress.heartbeat(
                    self.rt.factory,
                    self.claim.job_id,
                    self.claim.attempt,
                    lease_seconds=self.rt.settings.lease_seconds,
                )
            except (OperationalError, InterfaceError):
                log.warning("job=%s heartbeat failed; retrying", self.claim.job_id)
                continue
            if not pulse.alive:
                self.lost = True
                return
            self.last_alive = time.monotonic()
            self.cancel_requested = self.cancel_requested or pulse.cancel_requested

    def lapsed(self) -> bool:
        """True once no write of this run extended the lease for a whole lease period."""
        return time.monotonic() - self.last_alive > self.rt.settings.lease_seconds

    def stop(self) -> None:
        self._halt.set()
        if self.is_alive():
            self.join(timeout=5.0)
