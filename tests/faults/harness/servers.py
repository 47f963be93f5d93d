"""Throwaway PostgreSQL and Redis servers on free ports in temporary folders.

The fault scenarios stop and restart these; the machine's shared services on 5432 and
6379 are never touched. PostgreSQL refuses to run as root, so as root the server runs
as the ``postgres`` user (``setpriv`` execs, so the process we hold is the postmaster).

Both listen on 127.0.0.1 unless given a ``host`` address, and both accept a ``launcher``:
a command prefix that must exec its argument (the multi-host suite passes
``ip netns exec …``, so the server runs on a namespaced host, bound to that host's address).
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
from collections.abc import Sequence
from pathlib import Path

import psycopg
import redis

from .waiting import wait_until

LOOPBACK = "127.0.0.1"
STARTUP_SECONDS = 30.0
SHUTDOWN_SECONDS = 30.0


def free_port() -> int:
    """A TCP port nobody listens on right now (the kernel picks it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def postgres_bin_dir() -> Path:
    """The newest installed PostgreSQL's bin folder (Debian layout)."""
    candidates = sorted(
        glob.glob("/usr/lib/postgresql/*/bin/postgres"),
        key=lambda p: int(Path(p).parent.parent.name),
    )
    if not candidates:
        found = shutil.which("postgres")
        if found is None:
            raise RuntimeError("no PostgreSQL server binaries found")
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
    raise RuntimeError("running as root and no unprivileged user to run PostgreSQL as")
