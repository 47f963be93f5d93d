"""``deltaflow up``: the API and one worker as child processes on one machine, and the
demo job it can train (``--demo``) while drawing its progress.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

from service import tenants
from service.config import Settings

READY_TIMEOUT_SECONDS = 60.0
STOP_TIMEOUT_SECONDS = 30.0

# Long enough to watch: 1000 epochs of 38 mini-batches (~10 s on a free 2-core machine;
# 1500 full-batch epochs took 0.46 s, three frames of the bar).
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
        "n_samples": 1500,
        "n_classes": 3,
        "noise": 0.1,
        "seed": 0,
        "validation_split": 0.2,
        "standardize": True,
    },
    "training": {
        "optimizer": {"name": "adam", "learning_rate": 0.01},
        "epochs": 1000,
        "batch_size": 32,
        "seed": 0,
    },
}
# Said once when the demo job still waits after this long.
QUEUED_NOTICE_SECONDS = 2.0


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
            self._say(f"  more keys: {deltaflow_command()} create-key --tenant NAME")
        else:
            self._say(f"Create an API key with: {deltaflow_command()} create-key --tenant NAME")
        self._say("Press Ctrl-C to stop.")

    def _demo(self, settings: Settings, first_key: str | None) -> None:
        # Later starts have no plaintext key: the demo gets a key of its own, revoked after.
        key = first_key or tenants.issue_key(settings, tenants.DEFAULT_TENANT)
        try:
            run_demo(self.url, key, self.stopping, self.out)
        except (urllib.error.URLError, OSError, KeyError, ValueError) as exc:
            self._say(f"demo job failed to run: {exc}")
        finally:
            if first_key is None:
                tenants.revoke_key(settings, key)

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


def deltaflow_command(cwd: Path | None = None) -> str:
    """How to run this ``deltaflow`` from the user's shell: bare when it is the one on PATH,
    else its path (``.venv/bin/deltaflow`` after ``make run``: the venv is not activated)."""
    script = Path(sys.executable).parent / "deltaflow"
    if not script.exists():
        return f"{sys.executable} -m service.cli"
    found = shutil.which("deltaflow")
    if found and Path(found).resolve() == script.resolve():
        return "deltaflow"
    try:
        return str(script.relative_to(cwd or Path.cwd()))
    except ValueError:
        return str(script)


def _die_with_parent() -> None:
    """Linux: the child gets SIGTERM if ``up`` itself is killed, so nothing is orphaned."""
    try:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        pr_set_pdeathsig = 1
        libc.prctl(pr_set_pdeathsig, signal.SIGTERM)
    except (OSError, AttributeError):
        pass


def demo_job() -> dict[str, Any]:
    """The demo job; ``DELTAFLOW_DEMO_EPOCHS`` shortens it (the tests of ``up``)."""
    job = json.loads(json.dumps(DEMO_JOB))
    epochs = os.environ.get("DELTAFLOW_DEMO_EPOCHS")
    if epochs:
        job["training"]["epochs"] = int(epochs)
    return dict(job)


def run_demo(url: str, key: str, stopping: threading.Event, out: TextIO) -> dict[str, Any]:
    """Submit the demo job over HTTP (or pick up the one an earlier start left unfinished)
    and draw its progress until it ends."""
    headers = {"Authorization": f"Bearer {key}", "Content-Type": "application/json"}
    job = _unfinished_demo(url, headers)
    if job is not None:
        # Stopped mid-demo last time: the worker hands it back at Ctrl-C and would train
        # it before a new one, so a second demo would only wait. Watch this one instead.
        epoch = job["progress"]["epoch"]
        print(
            f"demo job {job['id']} resumed from epoch {epoch}: {url}/#/jobs/{job['id']}",
            file=out,
            flush=True,
        )
    else:
        job = _http(f"{url}/api/v1/jobs", headers, body=demo_job())
        print(f"demo job {job['id']} submitted: {url}/#/jobs/{job['id']}", file=out, flush=True)
    bar = ProgressBar(out)
    waiting_since = time.monotonic()
    noticed = False
    while not stopping.is_set():
        job = _http(f"{url}/api/v1/jobs/{job['id']}", headers)
        if job["status"] == "queued" and not noticed:
            if time.monotonic() - waiting_since >= QUEUED_NOTICE_SECONDS:
                noticed = True
                bar.say(_queued_notice(url, headers, job))
        bar.draw(job)
        if job["status"] in ("succeeded", "failed", "cancelled"):
            bar.finish(job)
            return job
        stopping.wait(0.25)
    return job


def _unfinished_demo(url: str, headers: dict[str, str]) -> dict[str, Any] | None:
    # One query: the worker may claim the job between two (queued, then running).
    expression = f"name = '{DEMO_JOB['name']}' and status in ('queued', 'running', 'cancelling')"
    query = urllib.parse.urlencode({"filter": expression, "limit": 1})
    items = _http(f"{url}/api/v1/jobs?{query}", headers)["items"]
    return dict(items[0]) if items else None


def _queued_notice(url: str, headers: dict[str, str], job: dict[str, Any]) -> str:
    """Why the demo job has not started: what the one worker is busy with."""
    ahead = 0
    for status in ("running", "queued"):
        listed = _http(f"{url}/api/v1/jobs?status={status}&limit=50", headers)
        ahead += sum(
            1
            for other in listed["items"]
            if other["id"] != job["id"] and other["created_at"] <= job["created_at"]
        )
    if ahead:
        return (
            f"demo job queued behind {ahead} earlier job(s); the embedded worker trains one "
            "at a time"
        )
    return "demo job queued: waiting for the worker to take it"


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
        self.last_status = ""
        self.last_drawn = ""
        self.last_drawn_interactive = False

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
            self.last_drawn_interactive = True
            return
        tenth = int(10 * float(job["progress"].get("fraction") or 0.0))
        # A log file gets one line per 10 %, and one when the status changes.
        if tenth != self.last_tenth or job["status"] != self.last_status:
            self.last_tenth, self.last_status = tenth, job["status"]
            self.last_drawn = self.line(job)
            print(self.last_drawn, file=self.out, flush=True)

    def say(self, message: str) -> None:
        """A line of its own, below the bar being redrawn."""
        if self.interactive and self.last_drawn_interactive:
            self.out.write("\n")
        print(message, file=self.out, flush=True)
        self.last_drawn = ""

    def finish(self, job: dict[str, Any]) -> None:
        if self.interactive:
            self.out.write("\n")
        elif self.line(job) != self.last_drawn:  # the final state was not drawn yet
            print(self.line(job), file=self.out)
        message = f"demo job {job['status']}"
        if job.get("error"):
            message += f": {job['error'].get('message')}"
        print(message, file=self.out, flush=True)
