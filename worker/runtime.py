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

from sqlalchemy import Engine, event
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
            postgres = settings.database_url.startswith("postgresql")
            args = tcp_settings(settings.lease_seconds) if postgres else None
            engine = make_engine(settings.database_url, connect_args=args)
            if engine.dialect.name == "postgresql":
                end_stuck_transactions(engine, settings.lease_seconds)
            factory = make_sessionmaker(engine)
            _current = (pid, Runtime(settings, factory, f"{socket.gethostname()}:{pid}"))
        return _current[1]


def tcp_settings(lease_seconds: float) -> dict[str, int]:
    """libpq TCP parameters of a worker's PostgreSQL connections, scaled to the lease.

    Without them a run whose host was cut off hangs in its flush until the kernel gives
    up (about 15 minutes; seen in tests/multihost): ``tcp_user_timeout`` drops a
    connection whose sent data stayed unacknowledged for a lease, so the write fails, the
    run sees its lease lapse and stops, and its pool slot is free again. Keepalives find
    a dead idle connection within about a lease instead of the kernel's two hours.
    """
    lease = max(1.0, lease_seconds)
    return {
        "keepalives": 1,
        "keepalives_idle": max(1, int(lease / 3)),
        "keepalives_interval": max(1, int(lease / 6)),
        "keepalives_count": 3,
        "tcp_user_timeout": int(lease * 1000),
        "connect_timeout": max(2, int(lease / 3)),
    }


def end_stuck_transactions(engine: Engine, lease_seconds: float) -> None:
    """Have PostgreSQL end a worker session left idle inside a transaction for a lease.

    Worker transactions take milliseconds. One left open is a frozen process (paused VM,
    partition, SIGSTOP) that may hold a job's row lock; every reaper's requeue would wait
    on it until the process resumed or TCP gave up (found by tests/faults/test_stale_run.py).
    """
    timeout_ms = max(1000, int(lease_seconds * 1000))

    @event.listens_for(engine, "connect")
    def _set_timeout(dbapi_connection, _record) -> None:  # type: ignore[no-untyped-def]
        cursor = dbapi_connection.cursor()
        cursor.execute(f"SET idle_in_transaction_session_timeout = {timeout_ms}")
        cursor.close()
        dbapi_connection.commit()


def _after_fork_in_child() -> None:
    # A thread of the parent (the reaper) may have held the lock at fork time.
    global _lock
    _lock = threading.Lock()


os.register_at_fork(after_in_child=_after_fork_in_child)
