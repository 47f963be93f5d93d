"""Celery's soft time limit, turned into a flag the training loop reads between epochs.

Celery raises ``SoftTimeLimitExceeded`` from a signal handler (SIGUSR1 in the pool
child), that is anywhere in the code — also in the middle of a database call, where it
leaves a psycopg connection unusable ("another command is already in progress") and
can be mistaken for a database outage. While a run is in progress the signal only sets
a flag; the runner then fails the job with ``time_limit`` at the next epoch boundary.
The hard time limit still kills a run whose single epoch never ends.
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager

SOFT_LIMIT_SIGNAL = getattr(signal, "SIGUSR1", None)


class SoftLimit:
    """Set once the soft time limit of the current task has passed."""

    def __init__(self) -> None:
        self.reached = False

    def is_set(self) -> bool:
        return self.reached


@contextmanager
def soft_limit_as_flag() -> Iterator[SoftLimit]:
    flag = SoftLimit()
    previous = None
    can_install = threading.current_thread() is threading.main_thread()
    if SOFT_LIMIT_SIGNAL is not None and can_install:

        def reached(_signum: int, _frame: object) -> None:
            flag.reached = True

        previous = signal.signal(SOFT_LIMIT_SIGNAL, reached)
    try:
        yield flag
    finally:
        if previous is not None:
            signal.signal(SOFT_LIMIT_SIGNAL, previous)
