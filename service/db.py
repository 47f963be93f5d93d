"""Engines and sessions. SQLite gets WAL, a busy timeout and foreign keys on every connection."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, cast

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import DBAPIError, DisconnectionError
from sqlalchemy.orm import Session, sessionmaker
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.sql.elements import ClauseElement

SQLITE_BUSY_TIMEOUT_MS = 30_000
IDLE_PING_SECONDS = 2.0
POOL_SIZE = 8  # `deltaflow api` runs 8 threads per process (a worker process uses one)


def make_engine(url: str, connect_args: dict[str, Any] | None = None) -> Engine:
    """Create an engine for ``url``; SQLite files get their folder and pragmas.

    ``connect_args`` go to the PostgreSQL driver (libpq parameters, e.g. the workers'
    keepalives and ``tcp_user_timeout``: ``worker.runtime``)."""
    if url.startswith("sqlite"):
        path = url.split("///", 1)[-1]
        if path and path != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(
            url, connect_args={"timeout": SQLITE_BUSY_TIMEOUT_MS / 1000, "check_same_thread": False}
        )
        event.listen(engine, "connect", _sqlite_pragmas)
        # Let SQLAlchemy issue BEGIN itself so "BEGIN IMMEDIATE" can be used for claims.
        return engine
    # LIFO keeps the busiest connections in use, so few of them sit idle long enough to be
    # pinged (a ping on every checkout was a round trip in front of every request). Up to
    # POOL_SIZE connections are kept open once concurrency needed them: an "overflow"
    # connection is closed on return, and opening one costs a PostgreSQL backend.
    engine = create_engine(
        url,
        pool_size=POOL_SIZE,
        max_overflow=POOL_SIZE,
        pool_use_lifo=True,
        connect_args=connect_args or {},
    )
    _ping_when_idle(engine)
    return engine


def make_read_engine(engine: Engine) -> Engine:
    """A small autocommit pool beside ``engine`` for single-statement reads and writes.

    A statement on it is one round trip (no BEGIN, no ROLLBACK) and switches no isolation
    level on checkout (switching cost as much as the read). The API's hot path uses it:
    key lookups, last-used times, and a polled job's version. Disposed with ``engine``.
    """
    url = engine.url
    if url.get_backend_name() == "sqlite":
        reads = create_engine(
            url,
            isolation_level="AUTOCOMMIT",
            connect_args={"timeout": SQLITE_BUSY_TIMEOUT_MS / 1000, "check_same_thread": False},
        )
        event.listen(reads, "connect", _sqlite_pragmas)
    else:
        reads = create_engine(
            url,
            isolation_level="AUTOCOMMIT",
            pool_size=POOL_SIZE,
            max_overflow=POOL_SIZE,
            pool_use_lifo=True,
        )
        _ping_when_idle(reads)
    event.listen(engine, "engine_disposed", lambda _engine: reads.dispose())
    return reads


def first_row(engine: Engine, statement: ClauseElement, params: dict[str, Any]) -> Any:
    """The first row of a Core SELECT run on the driver's own cursor, or None.

    For the hottest reads only (a polled job's version): SQLAlchemy's execution machinery
    costs more than the round trip itself there (~70 of ~170 µs). The statement is
    compiled once per dialect; driver errors become SQLAlchemy's, as if it had run them,
    and a connection found dead is dropped from the pool.
    """
    key = (statement, engine.dialect.name)
    compiled = _COMPILED.get(key)
    if compiled is None:
        compiled = _COMPILED[key] = cast(SQLCompiler, statement.compile(dialect=engine.dialect))
    sql = compiled.string
    bound = (
        tuple(params[name] for name in compiled.positiontup or ())
        if compiled.positional
        else params
    )
    connection = None
    try:
        connection = engine.raw_connection()  # connecting can fail too
        cursor = connection.cursor()
        try:
            cursor.execute(sql, bound)
            return cursor.fetchone()
        finally:
            cursor.close()
    except engine.dialect.loaded_dbapi.Error as error:
        dead = connection is None or engine.dialect.is_disconnect(
            error, connection.dbapi_connection, None
        )
        if connection is not None and dead:
            connection.invalidate(error)
        raise DBAPIError.instance(
            sql, bound, error, engine.dialect.loaded_dbapi.Error, connection_invalidated=dead
        ) from error
    finally:
        if connection is not None:
            connection.close()


_COMPILED: dict[tuple[ClauseElement, str], SQLCompiler] = {}


def _ping_when_idle(engine: Engine) -> None:
    """Ping a pooled connection before use only if it sat idle for IDLE_PING_SECONDS.

    A connection in steady use is known to be alive; one that waited (across a database
    restart, say) is checked, and a dead one replaced, before a request gets it. A
    connection that dies while in use is still caught: the request answers 503 and the
    pool drops every connection as old as it (see ``service.api.errors``).
    """

    @event.listens_for(engine, "checkin")
    def _returned(_dbapi_connection: Any, record: Any) -> None:
        record.info["returned_at"] = time.monotonic()

    @event.listens_for(engine, "checkout")
    def _checked_out(dbapi_connection: Any, record: Any, _proxy: Any) -> None:
        returned = record.info.get("returned_at")
        if returned is None or time.monotonic() - returned < IDLE_PING_SECONDS:
            return
        try:
            alive = engine.dialect.do_ping(dbapi_connection)
        except engine.dialect.loaded_dbapi.Error:
            alive = False
        if not alive:
            raise DisconnectionError("the pooled connection is dead")  # the pool reconnects


def _sqlite_pragmas(dbapi_connection, _record) -> None:  # type: ignore[no-untyped-def]
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.close()


def make_sessionmaker(engine: Engine) -> sessionmaker[Session]:
    return sessionmaker(bind=engine, expire_on_commit=False)


@contextmanager
def transaction(factory: sessionmaker[Session]) -> Iterator[Session]:
    """One unit of work: commit on success, roll back on any error."""
    session = factory()
    try:
        yield session
        session.commit()
    except BaseException:
        session.rollback()
        raise
    finally:
        session.close()


_BUILT: dict[tuple[Any, Any], Any] = {}


def insert_built_once(session: Session, build: Callable[[Any], Any]) -> Any:
    """``build(insert)`` with the session's dialect's ``insert`` (``dialect_insert``),
    built once per dialect and builder: an ON CONFLICT statement built per call was
    compiled afresh each time, a noticeable part of a tiny job's finish."""
    make = dialect_insert(session)
    statement = _BUILT.get((build, make))
    if statement is None:
        statement = _BUILT[(build, make)] = build(make)
    return statement


def dialect_insert(session: Session) -> Any:
    """The dialect's ``insert``, which has ON CONFLICT on PostgreSQL and SQLite alike."""
    dialect = session.get_bind().dialect.name
    if dialect == "postgresql":
        return postgresql.insert
    if dialect == "sqlite":
        return sqlite.insert
    raise RuntimeError(f"unsupported database dialect {dialect!r}")  # pragma: no cover
