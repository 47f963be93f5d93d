"""Warm shutdown reaches the training loop: checkpoint, release the job, take no new one.

Celery's warm shutdown (SIGTERM or Ctrl-C to the worker's main process) stops taking
messages and then waits for running tasks — for a long training run that could be hours.
So the main process raises a flag in memory shared with its prefork pool children (it
is created at import, before the pool forks): a running job sees it at its next epoch
boundary, checkpoints and hands the job back to the queue; a message that still arrives
in a shutting-down worker is rejected back to the broker for another worker.
"""

from __future__ import annotations

import multiprocessing

# One byte of shared memory (an anonymous shared mapping survives fork).
_flag = multiprocessing.RawValue("b", 0)


class WarmShutdown:
    """Quacks like ``threading.Event`` for the runner's ``stop`` argument."""

    def is_set(self) -> bool:
        return bool(_flag.value)


def pending() -> bool:
    return bool(_flag.value)


def request_stop() -> None:
    """In the main process: every run of this worker and of its pool children stops."""
    _flag.value = 1
