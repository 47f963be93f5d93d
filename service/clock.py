"""The database's clock: the one time that leases, heartbeats and the reaper compare.

Workers run on many hosts whose wall clocks drift apart (a paused VM, a host without NTP,
a container with a faked clock). A lease written by one host's clock and compared by
another's moves by their difference: a worker 10 minutes slow writes leases that every
other reaper sees as long expired, and its run is taken from it. So every lease and
every decision about one is made in SQL, on the database server's clock:

- ``db_now()`` is the time in the statement that uses it (PostgreSQL ``now()``, the
  transaction's start; SQLite ``'now'``, the statement's);
- ``db_after(seconds)`` is that time plus ``seconds`` (a lease's end).

On SQLite, the database's clock is the clock of the process running the statement (the
embedded default has one machine); SQLAlchemy stores SQLite datetimes as text
``YYYY-MM-DD HH:MM:SS.ffffff``, and these expressions produce the same text, so the
stored values compare as before.

Kernel code: no Flask, no Celery, no worker imports.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import DateTime, Float, bindparam, select
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.orm import Session
from sqlalchemy.sql.functions import FunctionElement

from service.timeutil import as_utc

# SQLite's %f is "SS.SSS"; three zeros make SQLAlchemy's six-digit microseconds.
_SQLITE_FORMAT = "'%Y-%m-%d %H:%M:%f'"


class db_now(FunctionElement[datetime]):
    """The database server's current time (UTC, timezone-aware when read back)."""

    type = DateTime(timezone=True)
    inherit_cache = True
    name = "db_now"


class db_after(FunctionElement[datetime]):
    """The database server's current time plus ``seconds`` (a bound parameter)."""

    type = DateTime(timezone=True)
    inherit_cache = True
    name = "db_after"

    def __init__(self, seconds: float) -> None:
        super().__init__(bindparam(None, float(seconds), type_=Float()))


@compiles(db_now, "postgresql")
def _now_postgresql(element: db_now, compiler: Any, **kw: Any) -> str:
    return "now()"


@compiles(db_now, "sqlite")
def _now_sqlite(element: db_now, compiler: Any, **kw: Any) -> str:
    return f"(strftime({_SQLITE_FORMAT}, 'now') || '000')"


@compiles(db_after, "postgresql")
def _after_postgresql(element: db_after, compiler: Any, **kw: Any) -> str:
    seconds = compiler.process(element.clauses, **kw)
    return f"(now() + make_interval(secs => {seconds}))"


@compiles(db_after, "sqlite")
def _after_sqlite(element: db_after, compiler: Any, **kw: Any) -> str:
    seconds = compiler.process(element.clauses, **kw)
    shift = f"printf('%+.6f seconds', {seconds})"
    return f"(strftime({_SQLITE_FORMAT}, 'now', {shift}) || '000')"


def now_or_db(now: datetime | None) -> Any:
    """``now`` if the caller fixed the time (tests), else the database's clock."""
    return db_now() if now is None else now


def after_or_db(now: datetime | None, seconds: float) -> Any:
    """``now + seconds`` if the caller fixed the time (tests), else on the database's clock."""
    return db_after(seconds) if now is None else now + timedelta(seconds=seconds)


def read_db_now(session: Session) -> datetime:
    """The database's clock, read once (the reaper decides a whole pass with it)."""
    value = session.scalar(select(db_now()))
    if isinstance(value, str):  # pragma: no cover - SQLAlchemy parses SQLite's text
        value = datetime.fromisoformat(value)
    assert value is not None
    return as_utc(value)
