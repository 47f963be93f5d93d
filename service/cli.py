"""The ``deltaflow`` command: ``up``, ``api``, ``worker``, ``migrate``, ``create-key``.

``up`` is the embedded default on one machine: it applies the migrations, then runs the
API (gunicorn) and one worker as child processes — exactly ``migrate`` + ``api`` +
``worker`` — configured by the same ``DELTAFLOW_*`` variables, which default to SQLite
and the filesystem broker under ``$DELTAFLOW_DATA_DIR`` (``./var``).

The CLI never imports the worker: ``worker`` replaces itself with ``celery -A
worker.celery_app worker`` after sizing the BLAS thread pools, so nothing numeric is
loaded before the thread counts are fixed.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

from sqlalchemy import func, select, update

from service.config import Settings
from service.db import make_engine, make_sessionmaker, transaction
from service.migrate import upgrade
from service.models import ApiKey
from service.timeutil import utcnow

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8000
DEFAULT_TENANT = "default"
BLAS_VARIABLES = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")
READY_TIMEOUT_SECONDS = 60.0
STOP_TIMEOUT_SECONDS = 30.0

DEMO_JOB: dict[str, Any] = {
    "name": "demo: three spirals",
    "network": {
        "layers": [{"units": 32, "activation": "tanh"}, {"units": 32, "activation": "tanh"}],
        "output": {"activation": "softmax"},
        "loss": "cross_entropy",
        "init": {"scheme": "glorot"},
    },
    "dataset": {
        "generator": "spirals",
        "n_samples": 600,
        "n_classes": 3,
        "noise": 0.1,
        "seed": 0,
        "validation_split": 0.2,
        "standardize": True,
    },
    "training": {"optimizer": {"name": "adam", "learning_rate": 0.01}, "epochs": 1500, "seed": 0},
}


# --- commands -------------------------------------------------------------------------


def cmd_migrate(_args: argparse.Namespace) -> int:
    settings = Settings.from_env()
    upgrade(settings.database_url)
    sys.stderr.write(f"database is at the latest schema ({_redact(settings.database_url)})\n")
    return 0


def cmd_create_key(args: argparse.Namespace) -> int:
    """Print one new key for the tenant (created if needed), alone on stdout."""
    settings = Settings.from_env()
    sys.stdout.write(_create_key(settings, args.tenant) + "\n")
    return 0


def cmd_api(args: argparse.Namespace) -> int:
    # Replace this process, so signals reach gunicorn directly.
    os.execvp(sys.executable, _api_command(args.host, args.port, args.workers))  # noqa: S606
    return 1  # not reached


def cmd_worker(args: argparse.Namespace) -> int:
    os.environ.update(blas_threads(args.concurrency))
    command = _worker_command(
        args.concurrency, args.pool, args.queues, args.loglevel, args.hostname
    )
    os.execvp(sys.executable, command)  # noqa: S606
    return 1  # not reached


def cmd_up(args: argparse.Namespace) -> int:
    settings = Settings.from_env()
    data_dir = Path(settings.data_dir).resolve()
    data_dir.mkdir(parents=True, exist_ok=True)
    upgrade(settings.database_url)
    first_key = _first_key(settings)
    stack = Embedded(data_dir, args.host, args.port)
    return stack.run(settings, first_key, demo=args.demo)


# --- helpers shared by the commands ----------------------------------------------------


def blas_threads(concurrency: int, cores: int | None = None) -> dict[str, str]:
    """Thread counts so that concurrency x BLAS threads never exceeds the cores."""
    cores = cores or os.cpu_count() or 1
    threads = str(max(1, cores // max(1, concurrency)))
    return dict.fromkeys(BLAS_VARIABLES, threads)


def _api_command(host: str, port: int, workers: int) -> list[str]:
    return [
        sys.executable, "-m", "gunicorn",
        "--bind", f"{host}:{port}",
        "--workers", str(workers),
        "--graceful-timeout", "10",
        "--access-logfile", "-",
        "service.app:create_app()",
    ]  # fmt: skip


def _worker_command(
    concurrency: int, pool: str, queues: str, loglevel: str, hostname: str | None
) -> list[str]:
    command = [
        sys.executable, "-m", "celery", "-A", "worker.celery_app", "worker",
        "--concurrency", str(concurrency),
        "--pool", pool,
        "--queues", queues,
        "--loglevel", loglevel,
        "--without-gossip", "--without-mingle",
    ]  # fmt: skip
    if hostname:
        command += ["--hostname", hostname]
    return command


def _create_key(settings: Settings, tenant: str) -> str:
    from service.tenants import create_tenant_key

    engine = make_engine(settings.database_url)
    try:
        with transaction(make_sessionmaker(engine)) as session:
            return create_tenant_key(session, tenant)
    finally:
        engine.dispose()


def _first_key(settings: Settings) -> str | None:
    """A key for the default tenant when the database has none yet; else None."""
    engine = make_engine(settings.database_url)
    try:
        with transaction(make_sessionmaker(engine)) as session:
            if session.scalar(select(func.count()).select_from(ApiKey)):
                return None
    finally:
        engine.dispose()
    return _create_key(settings, DEFAULT_TENANT)


def _revoke(settings: Settings, key: str) -> None:
    from service.tenants import hash_key

    engine = make_engine(settings.database_url)
    try:
        with transaction(make_sessionmaker(engine)) as session:
            session.execute(
                update(ApiKey).where(ApiKey.key_hash == hash_key(key)).values(revoked_at=utcnow())
            )
    finally:
        engine.dispose()


def _redact(url: str) -> str:
    """Hide a password in a database URL before printing it."""
    if "@" not in url or "://" not in url:
        return url
    scheme, rest = url.split("://", 1)
    credentials, host = rest.rsplit("@", 1)
    user = credentials.split(":", 1)[0]
    return f"{scheme}://{user}:***@{host}" if ":" in credentials else url


# --- deltaflow up ----------------------------------------------------------------------


@dataclass
class Child:
    name: str
    process: subprocess.Popen[bytes]
    log_path: Path


class Embedded:
    """The API and one worker as child processes, stopped together."""

    def __init__(self, data_dir: Path, host: str, port: int, out: TextIO = sys.stdout) -> None:
        self.data_dir = data_dir
        self.host = host
        self.port = port
        self.out = out
        self.children: list[Child] = []
        self.stopping = threading.Event()

    @property
    def url(self) -> str:
        shown = "127.0.0.1" if self.host in ("0.0.0.0", "") else self.host
        return f"http://{shown}:{self.port}"

    def run(self, settings: Settings, first_key: str | None, *, demo: bool) -> int:
        for signum in (signal.SIGINT, signal.SIGTERM):
            signal.signal(signum, lambda _s, _f: self.stopping.set())
        if not self._port_free():
            self._say(f"port {self.port} on {self.host} is in use; choose another with --port")
            return 1
        try:
            self._start()
            if not self._wait_ready():
                return self._stop(1)
            self._banner(first_key)
            if demo:
                self._demo(settings, first_key)
            while not self.stopping.wait(0.2):
                dead = self._dead_child()
                if dead is not None:
                    self._say(f"{dead.name} exited unexpectedly; see {dead.log_path}")
                    return self._stop(1)
            return self._stop(0)
        except BaseException:
            self._stop(1)
            raise

    def _port_free(self) -> bool:
        with socket.socket() as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                probe.bind((self.host, self.port))
            except OSError:
                return False
        return True

    def _start(self) -> None:
        logs = self.data_dir / "logs"
        logs.mkdir(parents=True, exist_ok=True)
        env = {**os.environ, "DELTAFLOW_DATA_DIR": str(self.data_dir)}
        me = [sys.executable, "-m", "service.cli"]
        commands = {
            "api": [*me, "api", "--host", self.host, "--port", str(self.port)],
            "worker": [*me, "worker", "--concurrency", "1", "--hostname", "embedded@%h"],
        }
        for name, command in commands.items():
            log_path = logs / f"{name}.log"
            with log_path.open("ab") as log:
                # Own sessions: Ctrl-C reaches only us, and we stop the children in order.
                process = subprocess.Popen(
                    command,
                    env=env,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    start_new_session=True,
                    preexec_fn=_die_with_parent,  # runs before any thread of ours starts
                )
            self.children.append(Child(name, process, log_path))

    def _wait_ready(self) -> bool:
        deadline = time.monotonic() + READY_TIMEOUT_SECONDS
        while not self.stopping.is_set():
            dead = self._dead_child()
            if dead is not None:
                self._say(f"{dead.name} failed to start; see {dead.log_path}")
                return False
            try:
                with urllib.request.urlopen(f"{self.url}/readyz", timeout=2) as response:  # noqa: S310
                    if response.status == 200:
                        return True
            except (urllib.error.URLError, OSError):
                pass
            if time.monotonic() > deadline:
                self._say(f"the API did not become ready; see {self.data_dir / 'logs'}")
                return False
            time.sleep(0.2)
        return False

    def _banner(self, first_key: str | None) -> None:
        self._say(f"Deltaflow is running at {self.url}/")
        self._say(f"  dashboard  {self.url}/    API  {self.url}/api/v1/docs")
        self._say(f"  data       {self.data_dir}    logs  {self.data_dir / 'logs'}")
        if first_key:
            self._say(f"API key (shown only now; keep it): {first_key}")
        else:
            self._say("Create an API key with: deltaflow create-key --tenant NAME")
        self._say("Press Ctrl-C to stop.")

    def _demo(self, settings: Settings, first_key: str | None) -> None:
        # Later starts have no plaintext key: the demo gets a key of its own, revoked after.
        key = first_key or _create_key(settings, DEFAULT_TENANT)
        try:
            run_demo(self.url, key, self.stopping, self.out)
        except (urllib.error.URLError, OSError, KeyError, ValueError) as exc:
            self._say(f"demo job failed to run: {exc}")
        finally:
            if first_key is None:
                _revoke(settings, key)

    def _dead_child(self) -> Child | None:
        return next((c for c in self.children if c.process.poll() is not None), None)

    def _stop(self, code: int) -> int:
        """SIGTERM both children (the worker checkpoints and releases its job), then wait."""
        for child in self.children:
            if child.process.poll() is None:
                child.process.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + STOP_TIMEOUT_SECONDS
        for child in self.children:
            try:
                child.process.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                os.killpg(child.process.pid, signal.SIGKILL)
                child.process.wait()
        if self.children:
            self._say("stopped")
        self.children = []
        return code

    def _say(self, line: str) -> None:
        self.out.write(line + "\n")
        self.out.flush()


def _die_with_parent() -> None:
    """Linux: the child gets SIGTERM if ``up`` itself is killed, so nothing is orphaned."""
    try:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        pr_set_pdeathsig = 1
        libc.prctl(pr_set_pdeathsig, signal.SIGTERM)
    except (OSError, AttributeError):
        pass


def run_demo(url: str, key: str, stopping: threading.Event, out: TextIO) -> dict[str, Any]:
    """Submit the demo job over HTTP and draw its progress until it ends."""
    headers = {"Authorization": f"Bearer {key}", "Content-Type": "application/json"}
    job = _http(f"{url}/api/v1/jobs", headers, body=DEMO_JOB)
    print(f"demo job {job['id']} submitted: {url}/#/jobs/{job['id']}", file=out, flush=True)
    bar = ProgressBar(out)
    while not stopping.is_set():
        job = _http(f"{url}/api/v1/jobs/{job['id']}", headers)
        bar.draw(job)
        if job["status"] in ("succeeded", "failed", "cancelled"):
            bar.finish(job)
            return job
        stopping.wait(0.25)
    return job


def _http(url: str, headers: dict[str, str], body: dict[str, Any] | None = None) -> Any:
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(url, data=data, headers=headers)  # noqa: S310
    with urllib.request.urlopen(request, timeout=10) as response:  # noqa: S310
        return json.loads(response.read())


class ProgressBar:
    """``[#######.......]  epoch 420/1500  loss 0.4123  acc 0.871`` redrawn in place."""

    WIDTH = 30

    def __init__(self, out: TextIO) -> None:
        self.out = out
        self.interactive = out.isatty()
        self.last_tenth = -1

    def line(self, job: dict[str, Any]) -> str:
        progress = job["progress"]
        fraction = min(1.0, max(0.0, float(progress.get("fraction") or 0.0)))
        filled = int(round(fraction * self.WIDTH))
        metrics = job.get("metrics") or {}
        parts = [
            f"[{'#' * filled}{'.' * (self.WIDTH - filled)}]",
            f"epoch {progress['epoch']}/{progress['epochs']}",
        ]
        if metrics.get("train_loss") is not None:
            parts.append(f"loss {metrics['train_loss']:.4f}")
        accuracy = metrics.get("val_accuracy")
        if accuracy is None:
            accuracy = metrics.get("train_accuracy")
        if accuracy is not None:
            parts.append(f"acc {accuracy:.3f}")
        parts.append(job["status"])
        return "  ".join(parts)

    def draw(self, job: dict[str, Any]) -> None:
        if self.interactive:
            self.out.write("\r" + self.line(job).ljust(90))
            self.out.flush()
            return
        tenth = int(10 * float(job["progress"].get("fraction") or 0.0))
        if tenth != self.last_tenth:  # a log file gets one line per 10 %
            self.last_tenth = tenth
            print(self.line(job), file=self.out, flush=True)

    def finish(self, job: dict[str, Any]) -> None:
        if self.interactive:
            self.out.write("\n")
        elif self.last_tenth < 10:  # the final state was not drawn yet
            print(self.line(job), file=self.out)
        message = f"demo job {job['status']}"
        if job.get("error"):
            message += f": {job['error'].get('message')}"
        print(message, file=self.out, flush=True)


# --- argument parsing ---------------------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="deltaflow",
        description="Neural-network training jobs over HTTP. Configured by DELTAFLOW_* variables.",
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    up = commands.add_parser("up", help="migrate, then run the API and one worker (embedded)")
    up.add_argument("--host", default=DEFAULT_HOST)
    up.add_argument("--port", type=int, default=DEFAULT_PORT)
    up.add_argument("--demo", action="store_true", help="submit a demo job and show progress")
    up.set_defaults(handler=cmd_up)

    api = commands.add_parser("api", help="serve the HTTP API with gunicorn")
    api.add_argument("--host", default=DEFAULT_HOST)
    api.add_argument("--port", type=int, default=DEFAULT_PORT)
    api.add_argument("--workers", type=int, default=2, help="gunicorn worker processes")
    api.set_defaults(handler=cmd_api)

    worker = commands.add_parser("worker", help="run a Celery worker (training jobs)")
    worker.add_argument("--concurrency", type=int, default=os.cpu_count() or 1)
    worker.add_argument("--pool", default="prefork")
    worker.add_argument("--queues", default="interactive,batch", help="in priority order")
    worker.add_argument("--loglevel", default="INFO")
    worker.add_argument("--hostname", default=None, help="Celery node name, e.g. w1@%%h")
    worker.set_defaults(handler=cmd_worker)

    migrate = commands.add_parser("migrate", help="apply the database migrations")
    migrate.set_defaults(handler=cmd_migrate)

    create_key = commands.add_parser("create-key", help="print a new API key for a tenant")
    create_key.add_argument("--tenant", required=True)
    create_key.set_defaults(handler=cmd_create_key)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return int(args.handler(args) or 0)


if __name__ == "__main__":
    sys.exit(main())
