"""Warm shutdown reaches the training loop: checkpoint, release the job, exit.

Celery's warm shutdown (SIGTERM or Ctrl-C to the worker's main process) stops taking
messages and then waits for running tasks — for a long training run that could be hours.
So the main process forwards SIGTERM to the pool children that run a task; such a child
has swapped in a handler that only sets the run's ``stop`` event, and the run then
checkpoints, hands the job back to the queue and returns at its next epoch boundary.
"""

from __future__ import annotations

import logging
import os
import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

log = logging.getLogger(__name__)

_main_pid: int | None = None
_events: set[threading.Event] = set()


def mark_main_process() -> None:
    """Called in the worker's main process, so pool children can tell they are children."""
    global _main_pid
    _main_pid = os.getpid()


@contextmanager
def stop_on_warm_shutdown() -> Iterator[threading.Event]:
    """An event that is set when this worker shuts down warmly while the block runs."""
    event = threading.Event()
    _events.add(event)
    previous = None
    in_pool_child = _main_pid is not None and os.getpid() != _main_pid
    if in_pool_child and threading.current_thread() is threading.main_thread():
        previous = signal.signal(signal.SIGTERM, lambda _signum, _frame: event.set())
    try:
        yield event
    finally:
        _events.discard(event)
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)


def request_stop(busy_children: set[int]) -> None:
    """In the main process: stop runs of this process (solo pool) and of busy pool children.

    Idle children are left alone: they exit when the pool closes.
    """
    for event in list(_events):
        event.set()
    for pid in busy_children - {os.getpid()}:
        try:
            os.kill(pid, signal.SIGTERM)
        except ProcessLookupError:
            pass


def child_pids(pid: int) -> list[int]:
    """Direct children of ``pid`` (Linux /proc; empty elsewhere)."""
    children: list[int] = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            text = stat.read_text()
        except OSError:
            continue
        # The command name may contain spaces; the parent pid is the 2nd field after ")".
        fields = text.rsplit(")", 1)[-1].split()
        if len(fields) > 1 and fields[1] == str(pid):
            children.append(int(stat.parent.name))
    return children
