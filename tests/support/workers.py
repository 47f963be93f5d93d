"""Real Celery worker processes for tests, each in its own session (process group).

``WorkerProcess.start()`` runs ``celery -A worker.celery_app worker`` (or any command,
e.g. ``deltaflow worker``) with the test backend's ``DELTAFLOW_*`` environment, and waits
until Celery logs that it is ready. ``stop()`` is a warm shutdown (SIGTERM to the main
process); ``kill()`` is the machine dying (SIGKILL to the whole group);
``kill_pool_child()`` takes one prefork child, as the OOM killer would.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

from .procs import child_pids

READY_MARK = " ready."
START_TIMEOUT = 60.0
STOP_TIMEOUT = 60.0


class WorkerProcess:
    def __init__(
        self,
        env: dict[str, str],
        log_dir: Path,
        *,
        concurrency: int = 1,
        pool: str = "prefork",
        command: list[str] | None = None,
    ) -> None:
        self.name = f"w{uuid.uuid4().hex[:6]}"
        self.env = env
        self.log_path = log_dir / f"worker-{self.name}.log"
        self.command = command or [
            sys.executable, "-m", "celery", "-A", "worker.celery_app", "worker",
            "--loglevel", "INFO",
            "--concurrency", str(concurrency),
            "--pool", pool,
            "--queues", "interactive,batch",
            "--hostname", f"{self.name}@%h",
            "--without-gossip", "--without-mingle",
        ]  # fmt: skip
        self.process: subprocess.Popen[bytes] | None = None
        self._stopping = False

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    def start(self, *, wait: bool = True) -> WorkerProcess:
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        log = self.log_path.open("ab")
        self.process = subprocess.Popen(
            self.command,
            env={**os.environ, **self.env},
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        log.close()
        if wait:
            self.wait_ready()
        return self

    def wait_ready(self, timeout: float = START_TIMEOUT) -> None:
        deadline = time.monotonic() + timeout
        while READY_MARK not in self.log():
            if self.process is None or self.process.poll() is not None:
                raise RuntimeError(f"worker exited during start:\n{self.log()[-4000:]}")
            if time.monotonic() > deadline:
                raise RuntimeError(f"worker not ready after {timeout}s:\n{self.log()[-4000:]}")
            time.sleep(0.1)

    def log(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def pool_children(self) -> list[int]:
        return child_pids(self.pid) if self.alive else []

    @property
    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def signal_stop(self) -> None:
        """Begin a warm shutdown without waiting for it (see ``stop``)."""
        if self.alive and not self._stopping:
            assert self.process is not None
            self.process.send_signal(signal.SIGTERM)
            self._stopping = True

    def stop(self, timeout: float = STOP_TIMEOUT) -> int | None:
        """Warm shutdown: SIGTERM to the main process only, then wait."""
        if not self.alive:
            return self._reap()
        assert self.process is not None
        self.signal_stop()
        try:
            return self.process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            return None

    def kill(self) -> None:
        """SIGKILL the whole process group: main process and every pool child."""
        if self.process is None:
            return
        try:
            os.killpg(self.process.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        self.process.wait()

    def kill_pool_child(self) -> int:
        children = self.pool_children()
        if not children:
            raise RuntimeError("the worker has no pool child")
        os.kill(children[0], signal.SIGKILL)
        return children[0]

    def _reap(self) -> int | None:
        if self.process is None:
            return None
        # Leftover children (e.g. after a killed parent) must not outlive the test.
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGKILL)
        return self.process.wait()
