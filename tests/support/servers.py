"""Real PostgreSQL and Redis for tests: the running ones, or throwaway instances.

``find_postgres``/``find_redis`` return a server on 127.0.0.1 when one answers; otherwise
they start a throwaway instance (``initdb``/``postgres``, ``redis-server``) in a temporary
directory. Each test module then gets its own PostgreSQL database (CREATE DATABASE with a
random name, dropped afterwards) and its own Redis database number, claimed with a lock
key so that concurrent test runs on the same Redis never share (or flush) a database.
"""

from __future__ import annotations

import contextlib
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import psycopg
import redis

PG_HOST = "127.0.0.1"
PG_PORT = 5432
PG_USER = "postgres"
REDIS_PORT = 6379
REDIS_LOCK_PREFIX = "deltaflow:test-db-lock:"
REDIS_LOCK_SECONDS = 3 * 3600
START_TIMEOUT = 30.0


class ServerUnavailable(RuntimeError):
    """Neither a running server nor a throwaway instance could be had."""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


# --- PostgreSQL ---------------------------------------------------------------------------


@dataclass
class Postgres:
    """A PostgreSQL server reachable as user ``postgres`` with trust auth."""

    port: int
    process: subprocess.Popen[bytes] | None = None  # set when we started it
    data_dir: Path | None = None
    runs_as: str | None = None

    def admin_url(self, database: str = "postgres") -> str:
        return f"postgresql://{PG_USER}@{PG_HOST}:{self.port}/{database}"

    def sqlalchemy_url(self, database: str) -> str:
        return f"postgresql+psycopg://{PG_USER}@{PG_HOST}:{self.port}/{database}"

    def create_database(self) -> str:
        name = f"deltaflow_test_{uuid.uuid4().hex[:12]}"
        with psycopg.connect(self.admin_url(), autocommit=True, connect_timeout=5) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        return name

    def drop_database(self, name: str) -> None:
        with psycopg.connect(self.admin_url(), autocommit=True, connect_timeout=5) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

    def stop(self) -> None:
        # SIGTERM is PostgreSQL's smart shutdown; fine for a throwaway
        _stop_throwaway(self.process, self.data_dir, timeout=20)
        self.process = None


def _stop_throwaway(
    process: subprocess.Popen | None, data_dir: Path | None, *, timeout: float
) -> None:
    """Terminate a throwaway server we started (kill if it lingers) and remove its files."""
    if process is None:
        return
    process.terminate()
    try:
        process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()
    if data_dir is not None:
        shutil.rmtree(data_dir, ignore_errors=True)


def postgres_answers(port: int = PG_PORT) -> bool:
    try:
        with psycopg.connect(
            f"postgresql://{PG_USER}@{PG_HOST}:{port}/postgres", connect_timeout=2
        ) as conn:
            conn.execute("SELECT 1")
    except psycopg.Error:
        return False
    return True


def _pg_binary(name: str) -> str | None:
    found = shutil.which(name)
    if found:
        return found
    candidates = sorted(Path("/usr/lib/postgresql").glob(f"*/bin/{name}"), reverse=True)
    return str(candidates[0]) if candidates else None


def start_throwaway_postgres(base: Path) -> Postgres:
    """initdb + postgres in ``base`` on a free port. PostgreSQL refuses to run as root,
    so as root the server runs as the ``postgres`` system user."""
    initdb, postgres = _pg_binary("initdb"), _pg_binary("postgres")
    if not (initdb and postgres):
        raise ServerUnavailable("no initdb/postgres binaries")
    user = None
    if os.geteuid() == 0:
        try:
            pwd.getpwnam("postgres")
        except KeyError as exc:
            raise ServerUnavailable("running as root and there is no postgres user") from exc
        user = "postgres"
    if user:
        # The postgres user must be able to reach its folders; pytest's are root-only.
        base = Path(tempfile.mkdtemp(prefix="deltaflow-pg-"))
        shutil.chown(base, user)
    data = base / "pgdata"
    sockets = base / "pgsock"
    for folder in (base, data, sockets):
        folder.mkdir(parents=True, exist_ok=True)
        if user:
            shutil.chown(folder, user)
    subprocess.run(
        [initdb, "-D", str(data), "-U", PG_USER, "--auth=trust", "-E", "UTF8", "--no-sync"],
        check=True,
        capture_output=True,
        user=user,
    )
    port = free_port()
    log = (base / "postgres.log").open("wb")
    process = subprocess.Popen(
        [
            postgres,
            "-D", str(data),
            "-p", str(port),
            "-k", str(sockets),
            "-c", "listen_addresses=127.0.0.1",
            "-c", "fsync=off",
            "-c", "max_connections=200",
        ],
        stdout=subprocess.DEVNULL,
        stderr=log,
        user=user,
        start_new_session=True,
    )  # fmt: skip
    log.close()  # the server holds its own descriptor
    server = Postgres(port=port, process=process, data_dir=base, runs_as=user)
    deadline = time.monotonic() + START_TIMEOUT
    while not postgres_answers(port):
        if process.poll() is not None or time.monotonic() > deadline:
            server.stop()
            raise ServerUnavailable(f"throwaway postgres did not start (see {base}/postgres.log)")
        time.sleep(0.2)
    return server


def _throwaway_forced() -> bool:
    """``DELTAFLOW_TEST_THROWAWAY=1``: never use the shared servers (tests the fallback)."""
    return os.environ.get("DELTAFLOW_TEST_THROWAWAY") == "1"


def find_postgres(base: Path) -> Postgres:
    if not _throwaway_forced() and postgres_answers(PG_PORT):
        return Postgres(port=PG_PORT)
    return start_throwaway_postgres(base)


# --- Redis --------------------------------------------------------------------------------


@dataclass
class Redis:
    port: int
    process: subprocess.Popen[bytes] | None = None
    data_dir: Path | None = None
    held: set[int] = field(default_factory=set)

    def url(self, db: int) -> str:
        return f"redis://127.0.0.1:{self.port}/{db}"

    def client(self, db: int = 0) -> redis.Redis:
        return redis.Redis(host="127.0.0.1", port=self.port, db=db, socket_timeout=5)

    def claim_database(self) -> int:
        """A database number no one else uses; database 0 only holds the lock keys."""
        locks = self.client(0)
        databases = int(locks.config_get("databases").get("databases", 16))
        token = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        for number in range(1, databases):
            if locks.set(f"{REDIS_LOCK_PREFIX}{number}", token, nx=True, ex=REDIS_LOCK_SECONDS):
                self.client(number).flushdb()
                self.held.add(number)
                return number
        raise ServerUnavailable("every Redis test database is claimed by another run")

    def release_database(self, number: int) -> None:
        self.client(number).flushdb()
        self.client(0).delete(f"{REDIS_LOCK_PREFIX}{number}")
        self.held.discard(number)

    def stop(self) -> None:
        _stop_throwaway(self.process, self.data_dir, timeout=10)
        self.process = None


def redis_answers(port: int = REDIS_PORT) -> bool:
    try:
        return bool(redis.Redis(host="127.0.0.1", port=port, socket_timeout=2).ping())
    except redis.RedisError:
        return False


def start_throwaway_redis(base: Path, *, appendonly: bool = False) -> Redis:
    binary = shutil.which("redis-server")
    if not binary:
        raise ServerUnavailable("no redis-server binary")
    base.mkdir(parents=True, exist_ok=True)
    port = free_port()
    process = subprocess.Popen(
        [
            binary,
            "--port", str(port),
            "--bind", "127.0.0.1",
            "--dir", str(base),
            "--save", "",
            "--appendonly", "yes" if appendonly else "no",
            "--logfile", str(base / "redis.log"),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )  # fmt: skip
    server = Redis(port=port, process=process, data_dir=base)
    deadline = time.monotonic() + START_TIMEOUT
    while not redis_answers(port):
        if process.poll() is not None or time.monotonic() > deadline:
            server.stop()
            raise ServerUnavailable(f"throwaway redis did not start (see {base}/redis.log)")
        time.sleep(0.1)
    return server


def find_redis(base: Path) -> Redis:
    if not _throwaway_forced() and redis_answers(REDIS_PORT):
        return Redis(port=REDIS_PORT)
    return start_throwaway_redis(base)


@contextlib.contextmanager
def postgres_database(server: Postgres):  # type: ignore[no-untyped-def]
    """A fresh, empty database for one test module; dropped afterwards."""
    name = server.create_database()
    try:
        yield server.sqlalchemy_url(name)
    finally:
        server.drop_database(name)
