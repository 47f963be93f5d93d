"""Fixtures of the fault suite: throwaway servers for the session, a fresh stack per test.

Every scenario gets its own PostgreSQL database and a flushed Redis (or its own SQLite
file and filesystem broker), and every process it starts is killed at teardown.
"""

from __future__ import annotations

import re
from collections.abc import Iterator

import pytest

from tests.support.servers import ThrowawayPostgres, ThrowawayRedis

from .harness.integrity import Tally
from .harness.report import markdown_table
from .harness.stack import Stack

BACKENDS = ["postgres-redis", "embedded"]
_TALLIES: list[Tally] = []


@pytest.fixture(scope="session")
def throwaway_postgres() -> Iterator[ThrowawayPostgres]:
    server = ThrowawayPostgres()
    try:
        server.start()
        yield server
    finally:
        server.destroy()


@pytest.fixture(scope="session")
def throwaway_redis() -> Iterator[ThrowawayRedis]:
    server = ThrowawayRedis()
    try:
        server.start()
        yield server
    finally:
        server.destroy()


def _database_name(request: pytest.FixtureRequest) -> str:
    return re.sub(r"[^a-z0-9]+", "_", request.node.name.lower())[:60]


@pytest.fixture
def pg_stack(
    request: pytest.FixtureRequest,
    tmp_path,
    throwaway_postgres: ThrowawayPostgres,
    throwaway_redis: ThrowawayRedis,
) -> Iterator[Stack]:
    """The production shape: PostgreSQL + Redis (both ours to break)."""
    throwaway_postgres.start()  # a previous scenario may have left them stopped on failure
    throwaway_redis.start()
    throwaway_redis.resume()
    throwaway_redis.flush()
    url = throwaway_postgres.create_database(_database_name(request))
    stack = Stack("postgres-redis", tmp_path, database_url=url, broker_url=throwaway_redis.url())
    try:
        yield stack
    finally:
        stack.close()


@pytest.fixture
def embedded_stack(tmp_path) -> Iterator[Stack]:
    """The embedded default: SQLite + filesystem broker under a temporary data dir."""
    stack = Stack("embedded", tmp_path)
    try:
        yield stack
    finally:
        stack.close()


@pytest.fixture(params=BACKENDS)
def any_stack(request: pytest.FixtureRequest) -> Stack:
    """Scenarios that must hold on both the production shape and the embedded default."""
    fixture = "pg_stack" if request.param == "postgres-redis" else "embedded_stack"
    return request.getfixturevalue(fixture)


@pytest.fixture
def record_tally():
    """Add a row to the reliability table printed at the end of the session."""
    return _TALLIES.append


def pytest_terminal_summary(terminalreporter) -> None:
    if not _TALLIES:
        return
    terminalreporter.section("reliability table (docs/reliability.md)")
    for line in markdown_table(_TALLIES).splitlines():
        terminalreporter.write_line(line)
