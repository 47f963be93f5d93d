"""Fixtures of the fault suite: throwaway servers for the session, a fresh stack per test.

Every scenario gets its own PostgreSQL database and a flushed Redis (or its own SQLite
file and filesystem broker, or emptied queues in a RabbitMQ virtual host of the suite's
own on the machine's RabbitMQ), and every process it starts is killed at teardown.

RabbitMQ runs a representative subset (``every_stack``): a poison pill killing its pool
child every time and a warm shutdown (SIGTERM), where its acks and redeliveries differ
from Redis's (a lost child's or a rejected message comes back at once, not after a
visibility timeout). The whole-worker SIGKILL also passed on RabbitMQ (50 s) and was
left to Redis and the embedded broker to keep the suite's time in check. Stopping or
pausing the broker is Redis-only: the machine's RabbitMQ is shared, so the suite never
stops it.
"""

from __future__ import annotations

import re
from collections.abc import Iterator

import pytest

from service.queue import QUEUE_ORDER
from tests.support.fixtures import unavailable
from tests.support.servers import (
    RabbitMQ,
    ServerUnavailable,
    ThrowawayPostgres,
    ThrowawayRedis,
    find_rabbitmq,
)

from .harness.integrity import Tally
from .harness.report import markdown_table
from .harness.stack import Stack

BACKENDS = ["postgres-redis", "embedded"]
EVERY_BACKEND = ["postgres-redis", "postgres-rabbitmq", "embedded"]
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


@pytest.fixture(scope="session")
def suite_rabbitmq() -> Iterator[tuple[RabbitMQ, str]]:
    """The machine's RabbitMQ (started if it is not running) and a virtual host for us."""
    try:
        server = find_rabbitmq()
        vhost = server.create_vhost()
    except (ServerUnavailable, OSError) as exc:
        unavailable(f"RabbitMQ: {exc}")
    try:
        yield server, vhost
    finally:
        server.stop()


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
def rabbit_stack(
    request: pytest.FixtureRequest,
    tmp_path,
    throwaway_postgres: ThrowawayPostgres,
    suite_rabbitmq: tuple[RabbitMQ, str],
) -> Iterator[Stack]:
    """PostgreSQL + RabbitMQ: the production shape with the other broker."""
    server, vhost = suite_rabbitmq
    throwaway_postgres.start()
    server.purge(vhost, QUEUE_ORDER)  # no message of an earlier scenario is left
    url = throwaway_postgres.create_database(_database_name(request))
    stack = Stack("postgres-rabbitmq", tmp_path, database_url=url, broker_url=server.url(vhost))
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


@pytest.fixture(params=EVERY_BACKEND)
def every_stack(request: pytest.FixtureRequest) -> Stack:
    """``any_stack`` and, for the scenarios where the brokers differ, RabbitMQ too."""
    fixture = {"postgres-redis": "pg_stack", "postgres-rabbitmq": "rabbit_stack"}
    return request.getfixturevalue(fixture.get(request.param, "embedded_stack"))


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
