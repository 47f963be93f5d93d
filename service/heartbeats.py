"""Which workers are alive, from the database: each worker's reaper writes its row every
pass (``beat``), a warm shutdown removes it (``forget``), and ``GET /metrics`` counts
the rows seen recently (``alive``) — right after any restart of the API, and for
workers on any host. Kernel code: no Flask, no Celery.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import Connection, delete, func, select
from sqlalchemy.orm import Session, sessionmaker

from service.db import dialect_insert, transaction
from service.models import WorkerHeartbeat
from service.timeutil import utcnow

# A row not written for a day belongs to a worker that died without a warm shutdown.
FORGET_AFTER = timedelta(days=1)


def alive_window(reaper_interval_seconds: float) -> float:
    """Seconds since its last beat within which a worker counts as alive: three missed
    passes, and at least 10 s (a pass may wait on a busy database)."""
    return max(10.0, 3 * reaper_interval_seconds)


def beat(
    factory: sessionmaker[Session],
    name: str,
    now: datetime | None = None,
    slots: int | None = None,
) -> None:
    """The worker ``name`` is alive, with ``slots`` pool slots (what the dispatcher fills)."""
    now = now or utcnow()
    with transaction(factory) as session:
        insert = dialect_insert(session)(WorkerHeartbeat).values(
            name=name, started_at=now, seen_at=now, slots=slots
        )
        session.execute(
            insert.on_conflict_do_update(
                index_elements=["name"], set_={"seen_at": now, "slots": slots}
            )
        )
        session.execute(delete(WorkerHeartbeat).where(WorkerHeartbeat.seen_at < now - FORGET_AFTER))


def forget(factory: sessionmaker[Session], name: str) -> None:
    with transaction(factory) as session:
        session.execute(delete(WorkerHeartbeat).where(WorkerHeartbeat.name == name))


def alive(connection: Connection, window_seconds: float, now: datetime | None = None) -> int:
    since = (now or utcnow()) - timedelta(seconds=window_seconds)
    statement = select(func.count()).where(WorkerHeartbeat.seen_at >= since)
    return int(connection.execute(statement).scalar_one())
