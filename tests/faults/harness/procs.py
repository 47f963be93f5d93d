"""Real worker processes, each in its own process group, so a whole worker can be killed.

``kill_group`` is the machine dying under the worker (SIGKILL to the parent and every pool
child); ``kill_pool_child`` is the kernel's OOM killer taking one child; ``terminate`` is a
warm shutdown (SIGTERM to the parent only, as systemd or Kubernetes send it).
"""

from __future__ import annotations

import os
import signal
import subprocess
from pathlib import Path

from tests.support.procs import child_pids, pid_alive

from .waiting import wait_until

EXIT_SECONDS = 60.0


class WorkerProcess:
    """One worker command (``deltaflow worker`` or ``celery ... worker``) and its log."""

    def __init__(self, name: str, command: list[str], env: dict[str, str], log_dir: Path) -> None:
        self.name = name
        self.command = command
        self.env = env
        self.log_path = log_dir / f"{name}.log"
        self.process: subprocess.Popen | None = None

    def __repr__(self) -> str:
        pid = self.process.pid if self.process else None
        return f"WorkerProcess({self.name}, pid={pid}, alive={self.alive})"

    def start(self) -> WorkerProcess:
        with open(self.log_path, "ab") as log:
            self.process = subprocess.Popen(
                self.command,
                env=self.env,
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,  # its own process group: pgid == pid
            )
        return self

    @property
    def pid(self) -> int:
        assert self.process is not None, "worker not started"
        return self.process.pid

    @property
    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def log_text(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def log_tail(self, lines: int = 40) -> str:
        return "\n".join(self.log_text().splitlines()[-lines:])

    def pool_children(self) -> list[int]:
        return [pid for pid in child_pids(self.pid) if pid_alive(pid)]

    def wait_ready(self, pool_size: int, timeout: float = 60.0) -> None:
        """Ready when the pool children exist and Celery has logged that it is ready."""

        def ready() -> bool:
            if not self.alive:
                raise AssertionError(f"{self.name} exited early:\n{self.log_tail()}")
            return len(self.pool_children()) >= pool_size and " ready." in self.log_text()

        wait_until(ready, timeout, f"{self.name} to be ready", describe=self.log_tail)

    def kill_group(self) -> None:
        """SIGKILL the parent and every pool child at once, then reap the parent."""
        if self.process is None:
            return
        try:
            os.killpg(self.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        self.process.wait(timeout=EXIT_SECONDS)
        # Orphaned children are reparented; wait until the kernel has removed them all.
        wait_until(lambda: not _group_members(self.pid), EXIT_SECONDS, f"{self.name} group to die")

    def kill_pool_child(self) -> int:
        """SIGKILL one pool child (the first busy-looking one); return its pid."""
        children = self.pool_children()
        assert children, f"{self.name} has no pool children"
        victim = children[0]
        os.kill(victim, signal.SIGKILL)
        return victim

    def pause(self) -> None:
        """SIGSTOP the whole group: a VM pause or a partition, the process never knows."""
        os.killpg(self.pid, signal.SIGSTOP)

    def resume(self) -> None:
        os.killpg(self.pid, signal.SIGCONT)

    def terminate(self, timeout: float = EXIT_SECONDS) -> int:
        """Warm shutdown: SIGTERM to the parent; wait for it to exit; return its exit code."""
        assert self.process is not None
        self.process.send_signal(signal.SIGTERM)
        return self.process.wait(timeout=timeout)

    def stop(self) -> None:
        """Teardown: nothing of this worker survives the test."""
        if self.process is not None and (self.alive or _group_members(self.pid)):
            self.resume()  # a stopped process ignores nothing, but be explicit
            self.kill_group()


def _group_members(pgid: int) -> list[int]:
    members = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[2]) == pgid and fields[0] != "Z":
            members.append(int(entry.name))
    return members
