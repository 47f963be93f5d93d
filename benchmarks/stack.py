"""A throwaway Deltaflow for the HTTP benchmarks: PostgreSQL, Redis, the API, workers.

``Stack`` claims a fresh PostgreSQL database and a Redis database number (the shared
servers on 127.0.0.1, or throwaway instances when they do not answer; the same helpers
as the test suite), then drives the service only through its public commands:
``deltaflow migrate``, ``deltaflow create-key``, ``deltaflow api`` (gunicorn) and
``deltaflow worker`` (Celery), run as ``python -m service.cli`` from this checkout.
Everything it started is stopped and everything it created is removed on exit.
"""

from __future__ import annotations

import http.client
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from tests.support.servers import find_postgres, find_redis, free_port  # noqa: E402
from tests.support.workers import WorkerProcess  # noqa: E402

API_PREFIX = "/api/v1"
CLI = [sys.executable, "-m", "service.cli"]
READY_TIMEOUT_SECONDS = 60.0
STOP_TIMEOUT_SECONDS = 30.0


def load_average() -> str:
    one, five, fifteen = os.getloadavg()
    return f"{one:.2f} {five:.2f} {fifteen:.2f}"


def parse_env(pairs: list[str]) -> dict[str, str]:
    """``--env NAME=VALUE`` options (e.g. a rate limit of a later version) as a dict."""
    env = {}
    for pair in pairs:
        name, sep, value = pair.partition("=")
        if not sep or not name:
            raise SystemExit(f"--env wants NAME=VALUE, got {pair!r}")
        env[name] = value
    return env


class Response:
    def __init__(self, status: int, headers: dict[str, str], body: bytes) -> None:
        self.status = status
        self.headers = headers
        self.body = body

    def json(self) -> Any:
        return json.loads(self.body)


class Client:
    """A keep-alive HTTP/1.1 client for one server (reconnects when the server closes)."""

    def __init__(self, base_url: str, key: str | None = None, timeout: float = 60.0) -> None:
        host_port = base_url.split("://", 1)[1].rstrip("/")
        self.host, _, port = host_port.partition(":")
        self.port = int(port or 80)
        self.key = key
        self.timeout = timeout
        self._conn: http.client.HTTPConnection | None = None

    def request(
        self,
        method: str,
        path: str,
        body: Any = None,
        headers: dict[str, str] | None = None,
    ) -> Response:
        sent = dict(headers or {})
        if self.key:
            sent["Authorization"] = f"Bearer {self.key}"
        data = None
        if body is not None:
            data = json.dumps(body).encode()
            sent["Content-Type"] = "application/json"
        for attempt in (1, 2):
            conn = self._connection()
            try:
                conn.request(method, path, body=data, headers=sent)
                raw = conn.getresponse()
                payload = raw.read()
            except (http.client.RemoteDisconnected, ConnectionError, BrokenPipeError):
                self.close()
                if attempt == 2:
                    raise
                continue
            if raw.will_close:
                self.close()
            return Response(raw.status, {k.lower(): v for k, v in raw.getheaders()}, payload)
        raise AssertionError("not reached")

    def get(self, path: str, headers: dict[str, str] | None = None) -> Response:
        return self.request("GET", path, headers=headers)

    def expect(
        self, method: str, path: str, status: int, body: Any = None, **kwargs: Any
    ) -> Response:
        response = self.request(method, path, body, **kwargs)
        if response.status != status:
            raise RuntimeError(
                f"{method} {path}: expected {status}, got {response.status}: "
                f"{response.body[:500]!r}"
            )
        return response

    def _connection(self) -> http.client.HTTPConnection:
        if self._conn is None:
            self._conn = http.client.HTTPConnection(self.host, self.port, timeout=self.timeout)
        return self._conn

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None


class Stack:
    """Servers, a database, a Redis db number, the API and workers; ``with`` stops them all."""

    def __init__(self, extra_env: dict[str, str] | None = None) -> None:
        self.scratch = Path(tempfile.mkdtemp(prefix="deltaflow-bench-"))
        self.extra_env = dict(extra_env or {})
        self.postgres: Any = None
        self.redis: Any = None
        self.database: str | None = None
        self.redis_number: int | None = None
        self.api: subprocess.Popen[bytes] | None = None
        self.workers: list[WorkerProcess] = []
        self.base_url = ""
        self.env: dict[str, str] = {}

    def __enter__(self) -> Stack:
        try:
            self.postgres = find_postgres()
            self.redis = find_redis()
            self.redis_number = self.redis.claim_database()
            self.database = self.postgres.create_database()
            self.env = {
                "DELTAFLOW_DATABASE_URL": self.postgres.sqlalchemy_url(self.database),
                "DELTAFLOW_BROKER_URL": self.redis.url(self.redis_number),
                "DELTAFLOW_DATA_DIR": str(self.scratch / "data"),
                **self.extra_env,
            }
            self._cli("migrate")
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    @property
    def database_url(self) -> str:
        return self.env["DELTAFLOW_DATABASE_URL"]

    def _cli(self, *args: str) -> str:
        done = subprocess.run(
            [*CLI, *args],
            env={**os.environ, **self.env},
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=120,
        )
        if done.returncode != 0:
            raise RuntimeError(f"deltaflow {' '.join(args)} failed:\n{done.stderr[-2000:]}")
        return done.stdout

    def create_key(self, tenant: str) -> str:
        return self._cli("create-key", "--tenant", tenant).strip()

    def start_api(
        self,
        workers: int | None = None,
        worker_class: str | None = None,
        threads: int | None = None,
        app: str = "service.app:create_app()",
    ) -> str:
        """The API on a free port. With neither ``worker_class`` nor ``threads`` it is
        ``deltaflow api`` itself (the project's own gunicorn settings); with either, gunicorn
        runs directly with the same bind and access log, to compare server models."""
        port = free_port()
        if worker_class == "waitress":  # another server altogether, for comparison
            command = [
                sys.executable, "-m", "waitress", f"--listen=127.0.0.1:{port}",
                f"--threads={threads or 4}", "--connection-limit=2000", "--backlog=2048",
                "--asyncore-use-poll", "--call", app.removesuffix("()"),
            ]  # fmt: skip
        elif worker_class is None and threads is None:
            command = [*CLI, "api", "--host", "127.0.0.1", "--port", str(port)]
            if workers is not None:
                command += ["--workers", str(workers)]
        else:
            command = [
                sys.executable, "-m", "gunicorn", "--bind", f"127.0.0.1:{port}",
                "--workers", str(workers or 2), "--graceful-timeout", "10",
                "--access-logfile", "-",
            ]  # fmt: skip
            if worker_class:
                command += ["--worker-class", worker_class]
            if threads:
                command += ["--threads", str(threads)]
            command.append(app)
        log_path = self.scratch / "api.log"
        with log_path.open("ab") as log:
            self.api = subprocess.Popen(
                command,
                env={**os.environ, **self.env},
                cwd=ROOT,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        self.base_url = f"http://127.0.0.1:{port}"
        self._wait_ready(log_path)
        return self.base_url

    def _wait_ready(self, log_path: Path) -> None:
        deadline = time.monotonic() + READY_TIMEOUT_SECONDS
        probe = Client(self.base_url, timeout=2)
        while True:
            assert self.api is not None
            if self.api.poll() is not None:
                raise RuntimeError(f"the API exited:\n{log_path.read_text()[-3000:]}")
            try:
                if probe.get("/readyz").status == 200:
                    probe.close()
                    return
            except OSError:
                probe.close()
            if time.monotonic() > deadline:
                raise RuntimeError(f"the API was not ready:\n{log_path.read_text()[-3000:]}")
            time.sleep(0.2)

    def api_processes(self) -> int:
        """Gunicorn's worker processes (children of its master), as started."""
        from tests.support.procs import child_pids

        return len(child_pids(self.api.pid)) if self.api is not None else 0

    def api_log_count(self, needle: str) -> int:
        path = self.scratch / "api.log"
        if not path.exists():
            return 0
        with path.open(errors="replace") as log:
            return sum(needle in line for line in log)

    def start_workers(self, count: int, concurrency: int) -> None:
        """``count`` ``deltaflow worker`` processes of ``concurrency`` pool children each."""
        started = []
        for index in range(count):
            command = [
                *CLI, "worker", "--concurrency", str(concurrency),
                "--hostname", f"bench{index}@%h", "--loglevel", "INFO",
            ]  # fmt: skip
            process = WorkerProcess(self.env, self.scratch / "workers", command=command)
            started.append(process.start(wait=False))
        self.workers.extend(started)
        for process in started:
            process.wait_ready()

    def close(self) -> None:
        for process in self.workers:
            process.stop(timeout=STOP_TIMEOUT_SECONDS)
        self.workers = []
        if self.api is not None:
            _stop_group(self.api)
            self.api = None
        if self.database is not None:
            self.postgres.drop_database(self.database)
            self.database = None
        if self.redis_number is not None:
            self.redis.release_database(self.redis_number)
            self.redis_number = None
        if self.postgres is not None:
            self.postgres.stop()
        if self.redis is not None:
            self.redis.stop()
        shutil.rmtree(self.scratch, ignore_errors=True)


def _stop_group(process: subprocess.Popen[bytes]) -> None:
    """SIGTERM to gunicorn's master (it stops its workers), SIGKILL the group if it lingers."""
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(timeout=STOP_TIMEOUT_SECONDS)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()
