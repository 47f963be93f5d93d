"""Per-process settings and database sessions of a worker.

Engines must not cross a fork (pooled connections would be shared by two processes), so
each process — the worker's main process and every prefork pool child — builds its own
on first use, keyed by its pid.
"""

from __future__ import annotations

import os
import socket
import threading
from dataclasses import dataclass

from sqlalchemy.orm import Session, sessionmaker

from service.config import Settings
from service.db import make_engine, make_sessionmaker


@dataclass(frozen=True)
class Runtime:
    settings: Settings
    factory: sessionmaker[Session]
    owner: str  # lease owner: host and process, for operators reading the jobs table


_lock = threading.Lock()
_current: tuple[int, Runtime] | None = None


def runtime() -> Runtime:
    """This process's runtime, built from ``DELTAFLOW_*`` on first use."""
    global _current
    with _lock:
        pid = os.getpid()
        if _current is None or _current[0] != pid:
            settings = Settings.from_env()
            factory = make_sessionmaker(make_engine(settings.database_url))
            _current = (pid, Runtime(settings, factory, f"{socket.gethostname()}:{pid}"))
        return _current[1]


def _after_fork_in_child() -> None:
    # A thread of the parent (the reaper) may have held the lock at fork time.
    global _lock
    _lock = threading.Lock()


os.register_at_fork(after_in_child=_after_fork_in_child)
