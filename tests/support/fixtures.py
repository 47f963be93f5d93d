"""Pytest fixtures: real backends (embedded and production) and real worker processes.

- ``postgres_server`` / ``redis_server`` (session): the running servers on 127.0.0.1, or
  throwaway instances; when neither works the tests are skipped loudly — and fail under
  ``CI=true``, where skipping would hide a broken environment.
- ``embedded_backend`` (module): SQLite + kombu filesystem broker in a temporary folder.
- ``production_backend`` (module): a fresh PostgreSQL database and a claimed Redis
  database number, both removed afterwards.
- ``rabbitmq_backend`` (module): a fresh PostgreSQL database and a RabbitMQ virtual host
  of its own (127.0.0.1:5672, guest/guest); ``broker_backend`` is parametrized over
  ``production`` (Redis) and ``rabbitmq`` for the modules that run on both brokers.
- ``backend`` (module): parametrized over both.
- ``worker_process``: a factory that starts real worker processes; all are stopped
  (SIGKILL if they do not exit) when the test ends. ``running_worker`` (module): one
  worker shared by a module's tests, for modules that never stop or kill workers.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path

import pytest
from sqlalchemy.orm import Session, sessionmaker

from service.config import Settings
from service.db import make_engine, make_sessionmaker
from service.migrate import upgrade
from worker.runtime import Runtime

from .servers import (
    Postgres,
    RabbitMQ,
    Redis,
    ServerUnavailable,
    find_postgres,
    find_rabbitmq,
    find_redis,
)
from .workers import WorkerProcess

# Fast timings for tests: short leases and reaper intervals so recovery takes seconds.
TEST_TUNING = {
    "LEASE_SECONDS": "3",
    "FLUSH_SECONDS": "0.2",
    "CHECKPOINT_EPOCHS": "25",
    "CHECKPOINT_SECONDS": "1",
    "REAPER_INTERVAL_SECONDS": "0.5",
    "REQUEUE_AFTER_SECONDS": "5",
    "MAX_ATTEMPTS": "3",
    "BROKER_POLLING_INTERVAL": "0.05",
}


def unavailable(reason: str) -> None:
    """Skip loudly — or fail under CI=true, where every test must run."""
    if os.environ.get("CI", "").lower() in {"1", "true", "yes"}:
        pytest.fail(f"CI=true and a required service is unavailable: {reason}")
    pytest.skip(f"SKIPPED (service unavailable, not a pass): {reason}")


@dataclass
class Backend:
    """Where a test's jobs live: a database, a broker and a data folder."""

    kind: str  # "embedded" | "production"
    data_dir: Path
    database_url: str
    broker_url: str
    tuning: dict[str, str] = field(default_factory=lambda: dict(TEST_TUNING))

    def env(self, **overrides: object) -> dict[str, str]:
        """``DELTAFLOW_*`` variables for subprocesses; overrides by field name, any case."""
        values = {
            "DATA_DIR": str(self.data_dir),
            "DATABASE_URL": self.database_url,
            "BROKER_URL": self.broker_url,
            **self.tuning,
            **{key.upper(): str(value) for key, value in overrides.items()},
        }
        return {f"DELTAFLOW_{key}": value for key, value in values.items()}

    def settings(self, **overrides: object) -> Settings:
        return Settings.from_env(env=self.env(**overrides))

    @cached_property
    def factory(self) -> sessionmaker[Session]:
        return make_sessionmaker(make_engine(self.database_url))

    def runtime(self, **overrides: object) -> Runtime:
        """A runtime for running ``worker.runner.run_job`` inside the test process."""
        return Runtime(self.settings(**overrides), self.factory, owner=f"test:{os.getpid()}")

    @property
    def log_dir(self) -> Path:
        return self.data_dir / "logs"

    def close(self) -> None:
        if "factory" in self.__dict__:
            engine = self.factory.kw["bind"]
            engine.dispose()


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[Postgres]:
    try:
        server = find_postgres()
    except (ServerUnavailable, OSError) as exc:
        unavailable(f"PostgreSQL: {exc}")
    yield server
    server.stop()


@pytest.fixture(scope="session")
def redis_server() -> Iterator[Redis]:
    try:
        server = find_redis()
    except (ServerUnavailable, OSError) as exc:
        unavailable(f"Redis: {exc}")
    yield server
    server.stop()


@pytest.fixture(scope="session")
def rabbitmq_server() -> Iterator[RabbitMQ]:
    try:
        server = find_rabbitmq()
    except (ServerUnavailable, OSError) as exc:
        unavailable(f"RabbitMQ: {exc}")
    yield server
    server.stop()


@pytest.fixture(scope="module")
def rabbitmq_backend(
    tmp_path_factory: pytest.TempPathFactory, postgres_server: Postgres, rabbitmq_server: RabbitMQ
) -> Iterator[Backend]:
    try:
        vhost = rabbitmq_server.create_vhost()
    except ServerUnavailable as exc:
        unavailable(f"RabbitMQ: {exc}")
    database = postgres_server.create_database()
    url = postgres_server.sqlalchemy_url(database)
    upgrade(url)
    backend = Backend(
        "rabbitmq", tmp_path_factory.mktemp("rabbitmq"), url, rabbitmq_server.url(vhost)
    )
    yield backend
    backend.close()
    rabbitmq_server.delete_vhost(vhost)
    postgres_server.drop_database(database)


@pytest.fixture(scope="module", params=["production", "rabbitmq"])
def broker_backend(request: pytest.FixtureRequest) -> Backend:
    """PostgreSQL with Redis, then with RabbitMQ."""
    return request.getfixturevalue(f"{request.param}_backend")


@pytest.fixture(scope="module")
def embedded_backend(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Backend]:
    data_dir = tmp_path_factory.mktemp("embedded")
    url = f"sqlite:///{data_dir / 'deltaflow.sqlite3'}"
    upgrade(url)
    backend = Backend("embedded", data_dir, url, "filesystem://")
    yield backend
    backend.close()


@pytest.fixture(scope="module")
def production_backend(
    tmp_path_factory: pytest.TempPathFactory, postgres_server: Postgres, redis_server: Redis
) -> Iterator[Backend]:
    database = postgres_server.create_database()
    number = redis_server.claim_database()
    url = postgres_server.sqlalchemy_url(database)
    upgrade(url)
    backend = Backend(
        "production", tmp_path_factory.mktemp("production"), url, redis_server.url(number)
    )
    yield backend
    backend.close()
    redis_server.release_database(number)
    postgres_server.drop_database(database)


@pytest.fixture(scope="module", params=["embedded", "production"])
def backend(request: pytest.FixtureRequest) -> Backend:
    return request.getfixturevalue(f"{request.param}_backend")


WorkerFactory = Callable[..., WorkerProcess]


@pytest.fixture(scope="module")
def running_worker(backend: Backend) -> Iterator[WorkerProcess]:
    """One worker for a whole module whose tests never stop or kill workers."""
    worker = WorkerProcess(backend.env(), backend.log_dir).start()
    yield worker
    worker.stop(timeout=10)


@pytest.fixture
def worker_process() -> Iterator[WorkerFactory]:
    """``worker_process(backend, concurrency=1, wait=True, command=None, **settings)``."""
    started: list[WorkerProcess] = []

    def start(
        backend: Backend,
        *,
        concurrency: int = 1,
        pool: str = "prefork",
        wait: bool = True,
        command: list[str] | None = None,
        **settings: object,
    ) -> WorkerProcess:
        worker = WorkerProcess(
            backend.env(**settings),
            backend.log_dir,
            concurrency=concurrency,
            pool=pool,
            command=command,
        )
        started.append(worker)
        return worker.start(wait=wait)

    yield start
    # Warm shutdown of all at once (an idle Celery worker takes seconds to stop); Redis
    # can hold it ~30 s when a message arrives at that moment (celery#3802), so give up
    # sooner: the database makes a kill harmless.
    for worker in started:
        worker.signal_stop()
    for worker in started:
        worker.stop(timeout=10)
