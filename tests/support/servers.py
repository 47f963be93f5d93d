"""Real PostgreSQL, Redis and RabbitMQ for tests: the machine's shared servers, or throwaway ones.

- ``find_postgres``/``find_redis`` (ordinary tests) return a handle on the server that
  answers on 127.0.0.1:5432/6379, or start a throwaway instance when none does
  (``DELTAFLOW_TEST_THROWAWAY=1`` forces that, to test the fallback). Each test module
  then gets its own PostgreSQL database (CREATE DATABASE with a random name, dropped
  afterwards) and its own Redis database number, claimed with a lock key, so concurrent
  test runs on the same Redis never share (or flush) a database.
- ``ThrowawayPostgres``/``ThrowawayRedis`` are servers of our own on free ports in
  temporary folders: the fault scenarios and the multi-host suite stop, restart and
  pause them; the shared servers are never touched.

- ``find_rabbitmq`` returns a handle on the RabbitMQ answering on 127.0.0.1:5672
  (guest/guest), starting the machine's ``rabbitmq-server`` when none answers. Isolation
  is one virtual host per user (``rabbitmqctl add_vhost``, deleted afterwards): queues
  and messages of concurrent runs never meet. The server itself is never stopped.

PostgreSQL refuses to run as root, so as root the server runs as the ``postgres`` user
(``setpriv`` execs, so the process we hold is the postmaster). Both listen on 127.0.0.1
unless given a ``host`` address, and both accept a ``launcher``: a command prefix that
must exec its argument (the multi-host suite passes ``ip netns exec …``, so the server
runs on a namespaced host, bound to that host's address).
"""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar

import psycopg
import redis

LOOPBACK = "127.0.0.1"
PG_PORT = 5432
PG_USER = "postgres"
REDIS_PORT = 6379
REDIS_LOCK_PREFIX = "deltaflow:test-db-lock:"
REDIS_LOCK_SECONDS = 3 * 3600
# Take a lock over only if it still holds the dead run's token (compare-and-set).
_TAKE_OVER = (
    "if redis.call('get', KEYS[1]) == ARGV[1] then "
    "redis.call('set', KEYS[1], ARGV[2], 'EX', ARGV[3]) return 1 end return 0"
)


def _owner_is_gone(token: bytes | None) -> bool:
    """A lock taken by a run on this host whose process no longer exists (it was killed
    before its teardown): its database may be reused at once, not after the lock's hours."""
    if token is None:
        return False
    host, _, rest = token.decode(errors="replace").partition(":")
    pid = rest.partition(":")[0]
    if host != socket.gethostname() or not pid.isdigit():
        return False
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return True
    except PermissionError:  # alive, someone else's
        return False
    return False


RABBITMQ_PORT = 5672
RABBITMQ_START_SECONDS = 90.0
STARTUP_SECONDS = 30.0
SHUTDOWN_SECONDS = 30.0


class ServerUnavailable(RuntimeError):
    """Neither a running server nor a throwaway instance could be had."""


def free_port() -> int:
    """A TCP port nobody listens on right now (the kernel picks it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((LOOPBACK, 0))
        return int(sock.getsockname()[1])


def wait_until(check: Callable[[], bool], timeout: float, what: str) -> None:
    """Poll ``check`` until it is true; ServerUnavailable after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise ServerUnavailable(f"timed out after {timeout:.0f}s waiting for {what}")
        time.sleep(0.1)


def postgres_bin_dir() -> Path:
    """The newest installed PostgreSQL's bin folder (Debian layout)."""
    candidates = sorted(
        glob.glob("/usr/lib/postgresql/*/bin/postgres"),
        key=lambda p: int(Path(p).parent.parent.name),
    )
    if not candidates:
        found = shutil.which("postgres")
        if found is None:
            raise ServerUnavailable("no PostgreSQL server binaries found")
        return Path(found).parent
    return Path(candidates[-1]).parent


def _stop_process(process: subprocess.Popen, sig: int) -> None:
    if process.poll() is not None:
        return
    process.send_signal(sig)
    try:
        process.wait(timeout=SHUTDOWN_SECONDS)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(timeout=SHUTDOWN_SECONDS)


# --- throwaway servers of our own ---------------------------------------------------------


class ThrowawayPostgres:
    """A PostgreSQL cluster of our own: ``start``, ``stop``, ``restart``, ``create_database``."""

    def __init__(self, host: str = LOOPBACK, launcher: Sequence[str] = ()) -> None:
        self.host = host
        self.launcher = list(launcher)
        self.bin_dir = postgres_bin_dir()
        self.root = Path(tempfile.mkdtemp(prefix="deltaflow-faults-pg-"))
        self.data_dir = self.root / "data"
        self.socket_dir = self.root / "sock"
        self.log_path = self.root / "postgres.log"
        self.port = free_port()
        self.process: subprocess.Popen | None = None
        self._as_user = _unprivileged_user()
        self._initdb()

    def __repr__(self) -> str:
        state = "running" if self.running else "stopped"
        return f"ThrowawayPostgres(port={self.port}, {state})"

    def _command(self, *args: str) -> list[str]:
        if self._as_user is None:
            return list(args)
        uid, gid = self._as_user
        return ["setpriv", f"--reuid={uid}", f"--regid={gid}", "--clear-groups", *args]

    def _initdb(self) -> None:
        self.socket_dir.mkdir()
        if self._as_user is not None:
            uid, gid = self._as_user
            for path in (self.root, self.socket_dir):
                os.chown(path, uid, gid)
        subprocess.run(
            self._command(
                str(self.bin_dir / "initdb"),
                "-D",
                str(self.data_dir),
                "-U",
                "postgres",
                "--auth=trust",
                "--no-sync",
                "-E",
                "UTF8",
            ),
            check=True,
            capture_output=True,
            timeout=120,
        )
        if self.host != LOOPBACK:
            # initdb trusts loopback only; let the hosts of the server's own subnet in.
            with open(self.data_dir / "pg_hba.conf", "a") as hba:
                hba.write("host all all samenet trust\n")

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def url(self, database: str = "postgres") -> str:
        return f"postgresql+psycopg://postgres@{self.host}:{self.port}/{database}"

    def _conninfo(self, database: str = "postgres") -> str:
        return (
            f"host={self.host} port={self.port} user=postgres dbname={database} connect_timeout=2"
        )

    def start(self) -> None:
        if self.running:
            return
        log = open(self.log_path, "ab")  # the child keeps its own descriptor
        # fsync off: a throwaway cluster; crash safety of the host is not under test.
        self.process = subprocess.Popen(
            self.launcher
            + self._command(
                str(self.bin_dir / "postgres"),
                "-D",
                str(self.data_dir),
                "-p",
                str(self.port),
                "-k",
                str(self.socket_dir),
                "-c",
                f"listen_addresses={self.host}",
                "-c",
                "fsync=off",
                "-c",
                "max_connections=200",
            ),
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        log.close()
        wait_until(self.accepts_connections, STARTUP_SECONDS, "throwaway PostgreSQL to start")

    def stop(self) -> None:
        """Fast shutdown (SIGINT): open connections are terminated, like a real outage."""
        if self.process is not None:
            _stop_process(self.process, signal.SIGINT)
            self.process = None

    def restart(self) -> None:
        self.stop()
        self.start()

    def accepts_connections(self) -> bool:
        try:
            with psycopg.connect(self._conninfo(), autocommit=True) as conn:
                conn.execute("SELECT 1")
        except psycopg.OperationalError:
            return False
        return True

    def create_database(self, name: str) -> str:
        """A fresh, empty database; returns its SQLAlchemy URL."""
        with psycopg.connect(self._conninfo(), autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            conn.execute(f'CREATE DATABASE "{name}"')
        return self.url(name)

    def destroy(self) -> None:
        self.stop()
        shutil.rmtree(self.root, ignore_errors=True)


class ThrowawayRedis:
    """A redis-server of our own without persistence: a restart loses every message."""

    def __init__(self, host: str = LOOPBACK, launcher: Sequence[str] = ()) -> None:
        self.host = host
        self.launcher = list(launcher)
        self.root = Path(tempfile.mkdtemp(prefix="deltaflow-faults-redis-"))
        self.port = free_port()
        self.process: subprocess.Popen | None = None

    def __repr__(self) -> str:
        state = "running" if self.running else "stopped"
        return f"ThrowawayRedis(port={self.port}, {state})"

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def url(self, db: int = 0) -> str:
        return f"redis://{self.host}:{self.port}/{db}"

    def start(self) -> None:
        if self.running:
            return
        self.process = subprocess.Popen(
            self.launcher
            + [
                "redis-server",
                "--port",
                str(self.port),
                "--bind",
                self.host,
                # Protected mode refuses clients off loopback; the bind address limits them.
                "--protected-mode",
                "yes" if self.host == LOOPBACK else "no",
                "--save",
                "",
                "--appendonly",
                "no",
                "--dir",
                str(self.root),
                "--logfile",
                str(self.root / "redis.log"),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        wait_until(self.accepts_connections, STARTUP_SECONDS, "throwaway Redis to start")

    def stop(self) -> None:
        if self.process is not None:
            self.resume()  # a stopped process would not see SIGTERM until continued
            _stop_process(self.process, signal.SIGTERM)
            self.process = None

    def restart(self) -> None:
        self.stop()
        self.start()

    def pause(self) -> None:
        """SIGSTOP: Redis keeps its connections open but answers nothing (a hung broker)."""
        assert self.process is not None
        self.process.send_signal(signal.SIGSTOP)

    def resume(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGCONT)

    def client(self, db: int = 0) -> redis.Redis:
        return redis.Redis(host=self.host, port=self.port, db=db, socket_timeout=2)

    def accepts_connections(self) -> bool:
        try:
            with self.client() as client:
                return bool(client.ping())
        except redis.RedisError:
            return False

    def flush(self) -> None:
        with self.client() as client:
            client.flushall()

    def destroy(self) -> None:
        self.stop()
        shutil.rmtree(self.root, ignore_errors=True)


# --- the shared server, or a throwaway one: what ordinary tests use -----------------------


@dataclass
class Postgres:
    """A PostgreSQL reachable as user ``postgres`` with trust auth; ``own`` if we started it."""

    port: int
    own: ThrowawayPostgres | None = None

    def admin_url(self, database: str = "postgres") -> str:
        return f"postgresql://{PG_USER}@{LOOPBACK}:{self.port}/{database}"

    def sqlalchemy_url(self, database: str) -> str:
        return f"postgresql+psycopg://{PG_USER}@{LOOPBACK}:{self.port}/{database}"

    def create_database(self) -> str:
        name = f"deltaflow_test_{uuid.uuid4().hex[:12]}"
        with psycopg.connect(self.admin_url(), autocommit=True, connect_timeout=5) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        return name

    def drop_database(self, name: str) -> None:
        with psycopg.connect(self.admin_url(), autocommit=True, connect_timeout=5) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

    def stop(self) -> None:
        """Stop and remove a throwaway server; the shared one is never touched."""
        if self.own is not None:
            self.own.destroy()
            self.own = None


@dataclass
class Redis:
    port: int
    own: ThrowawayRedis | None = None
    held: set[int] = field(default_factory=set)

    def url(self, db: int) -> str:
        return f"redis://{LOOPBACK}:{self.port}/{db}"

    def client(self, db: int = 0) -> redis.Redis:
        return redis.Redis(host=LOOPBACK, port=self.port, db=db, socket_timeout=5)

    def claim_database(self) -> int:
        """A database number no one else uses; database 0 only holds the lock keys."""
        locks = self.client(0)
        databases = int(locks.config_get("databases").get("databases", 16))
        token = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        for number in range(1, databases):
            key = f"{REDIS_LOCK_PREFIX}{number}"
            if locks.set(key, token, nx=True, ex=REDIS_LOCK_SECONDS) or self._take_over(
                locks, key, token
            ):
                self.client(number).flushdb()
                self.held.add(number)
                return number
        raise ServerUnavailable("every Redis test database is claimed by another run")

    @staticmethod
    def _take_over(locks: redis.Redis, key: str, token: str) -> bool:
        held = locks.get(key)
        if not _owner_is_gone(held):
            return False
        return bool(locks.eval(_TAKE_OVER, 1, key, held, token, REDIS_LOCK_SECONDS))

    def release_database(self, number: int) -> None:
        self.client(number).flushdb()
        self.client(0).delete(f"{REDIS_LOCK_PREFIX}{number}")
        self.held.discard(number)

    def stop(self) -> None:
        """Stop and remove a throwaway server; the shared one is never touched."""
        if self.own is not None:
            self.own.destroy()
            self.own = None


@dataclass
class RabbitMQ:
    """The machine's RabbitMQ; each user gets a virtual host of its own."""

    port: int = RABBITMQ_PORT
    held: set[str] = field(default_factory=set)

    def url(self, vhost: str) -> str:
        return f"amqp://guest:guest@{LOOPBACK}:{self.port}/{vhost}"

    def create_vhost(self) -> str:
        name = f"deltaflow-test-{os.getpid()}-{uuid.uuid4().hex[:8]}"
        _rabbitmqctl("add_vhost", name)
        _rabbitmqctl("set_permissions", "-p", name, "guest", ".*", ".*", ".*")
        self.held.add(name)
        return name

    def delete_vhost(self, name: str) -> None:
        _rabbitmqctl("delete_vhost", name)
        self.held.discard(name)

    def purge(self, vhost: str, queues: Sequence[str]) -> None:
        """Delete ``queues`` of ``vhost`` with their messages (a fresh broker per scenario)."""
        from kombu import Connection

        with Connection(self.url(vhost), connect_timeout=5) as conn:
            channel = conn.default_channel
            for queue in queues:
                channel.queue_delete(queue)

    def stop(self) -> None:
        """Remove the virtual hosts still held; the server keeps running."""
        for name in list(self.held):
            self.delete_vhost(name)


def _rabbitmqctl(*args: str) -> None:
    """Run rabbitmqctl (it needs the node's Erlang cookie: root, or the rabbitmq user)."""
    try:
        subprocess.run(
            ["rabbitmqctl", "-q", *args], check=True, capture_output=True, timeout=STARTUP_SECONDS
        )
    except (subprocess.SubprocessError, FileNotFoundError) as exc:
        detail = (getattr(exc, "stderr", b"") or b"").decode(errors="replace")[:200]
        raise ServerUnavailable(f"rabbitmqctl {args[0]} failed: {exc} {detail}") from exc


def rabbitmq_answers(port: int = RABBITMQ_PORT) -> bool:
    from kombu import Connection

    try:
        with Connection(f"amqp://guest:guest@{LOOPBACK}:{port}//", connect_timeout=2) as conn:
            conn.ensure_connection(max_retries=0, timeout=2)
    except Exception:  # amqp's and the socket's errors alike: not there
        return False
    return True


def find_rabbitmq() -> RabbitMQ:
    """The RabbitMQ on 127.0.0.1:5672, started (``rabbitmq-server -detached``) if needed."""
    if rabbitmq_answers():
        return RabbitMQ()
    if shutil.which("rabbitmq-server") is None or shutil.which("rabbitmqctl") is None:
        raise ServerUnavailable("RabbitMQ does not answer on 5672 and rabbitmq-server is missing")
    subprocess.run(["rabbitmq-server", "-detached"], check=False, capture_output=True, timeout=30)
    subprocess.run(
        ["rabbitmqctl", "-q", "await_startup"],
        check=False,
        capture_output=True,
        timeout=RABBITMQ_START_SECONDS,
    )
    deadline = time.monotonic() + RABBITMQ_START_SECONDS
    while not rabbitmq_answers():
        if time.monotonic() > deadline:
            raise ServerUnavailable("rabbitmq-server was started but 5672 does not answer")
        time.sleep(1)
    return RabbitMQ()


def postgres_answers(port: int = PG_PORT) -> bool:
    try:
        with psycopg.connect(
            f"postgresql://{PG_USER}@{LOOPBACK}:{port}/postgres", connect_timeout=2
        ) as conn:
            conn.execute("SELECT 1")
    except psycopg.Error:
        return False
    return True


def redis_answers(port: int = REDIS_PORT) -> bool:
    try:
        return bool(redis.Redis(host=LOOPBACK, port=port, socket_timeout=2).ping())
    except redis.RedisError:
        return False


def _throwaway_forced() -> bool:
    """``DELTAFLOW_TEST_THROWAWAY=1``: never use the shared servers (tests the fallback)."""
    return os.environ.get("DELTAFLOW_TEST_THROWAWAY") == "1"


def find_postgres() -> Postgres:
    if not _throwaway_forced() and postgres_answers(PG_PORT):
        return Postgres(port=PG_PORT)
    server = _started(ThrowawayPostgres())
    return Postgres(port=server.port, own=server)


def find_redis() -> Redis:
    if not _throwaway_forced() and redis_answers(REDIS_PORT):
        return Redis(port=REDIS_PORT)
    server = _started(ThrowawayRedis())
    return Redis(port=server.port, own=server)


Throwaway = TypeVar("Throwaway", ThrowawayPostgres, ThrowawayRedis)


def _started(server: Throwaway) -> Throwaway:
    """Start a throwaway server; remove it again if it does not come up."""
    try:
        server.start()
    except BaseException:
        server.destroy()
        raise
    return server


def _unprivileged_user() -> tuple[int, int] | None:
    """(uid, gid) to run PostgreSQL as when we are root; None when we are not."""
    if os.geteuid() != 0:
        return None
    for name in ("postgres", "nobody"):
        try:
            entry = pwd.getpwnam(name)
        except KeyError:
            continue
        return entry.pw_uid, entry.pw_gid
    raise ServerUnavailable("running as root and no unprivileged user to run PostgreSQL as")
