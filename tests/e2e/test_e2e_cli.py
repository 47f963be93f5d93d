"""The ``deltaflow`` command in real subprocesses: up, worker, migrate, create-key."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
from sqlalchemy import inspect, select

from service.cli import blas_threads
from service.db import make_engine
from service.models import ApiKey
from tests.support.jobs import insert_job, tiny_spec, wait_for_status
from tests.support.procs import child_pids
from tests.support.servers import free_port

DELTAFLOW = str(Path(sys.executable).with_name("deltaflow"))
KEY_PATTERN = re.compile(r"API key \(shown only now; keep it\): (\S+)")
URL_PATTERN = re.compile(r"Deltaflow is running at (http://\S+)/")


def clean_env(tmp_path: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("DELTAFLOW_")}
    env["DELTAFLOW_DATA_DIR"] = str(tmp_path / "var")
    env["DELTAFLOW_REAPER_INTERVAL_SECONDS"] = "0.5"
    env["DELTAFLOW_BROKER_POLLING_INTERVAL"] = "0.05"
    return env


def http(url: str, key: str | None = None, body: dict | None = None) -> tuple[int, dict]:
    headers = {"Content-Type": "application/json"}
    if key:
        headers["Authorization"] = f"Bearer {key}"
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(url, data=data, headers=headers)
    with urllib.request.urlopen(request, timeout=10) as response:
        return response.status, json.loads(response.read())


@pytest.mark.parametrize(("concurrency", "cores"), [(1, 2), (2, 2), (3, 2), (1, 8), (3, 8)])
def test_blas_threads_never_oversubscribe_the_cores(concurrency, cores):
    threads = {int(value) for value in blas_threads(concurrency, cores).values()}
    assert len(threads) == 1
    (per_child,) = threads
    assert per_child >= 1
    assert concurrency * per_child <= max(cores, concurrency)


class Up:
    """``deltaflow up`` in a subprocess; ``read_until`` collects its terminal output."""

    def __init__(self, tmp_path: Path, *args: str, **env: str) -> None:
        self.tmp_path = tmp_path
        self.port = free_port()
        self.process = subprocess.Popen(
            [DELTAFLOW, "up", "--port", str(self.port), *args],
            env={**clean_env(tmp_path), **env},
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        self.lines: list[str] = []

    def read_until(self, marker: str) -> str:
        assert self.process.stdout is not None
        while not any(marker in line for line in self.lines):
            line = self.process.stdout.readline()
            assert line, f"deltaflow up ended early:\n{self.text}{logs(self.tmp_path)}"
            self.lines.append(line)
        return self.text

    @property
    def text(self) -> str:
        return "".join(self.lines)

    def interrupt(self) -> int:
        self.process.send_signal(signal.SIGINT)
        return self.process.wait(timeout=60)

    def close(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait()
        if self.process.stdout is not None:
            self.process.stdout.close()


@pytest.mark.integration
@pytest.mark.slow
def test_up_serves_trains_and_stops_both_children_on_ctrl_c(tmp_path):
    up = Up(tmp_path)
    try:
        text = up.read_until("Press Ctrl-C")
        url = URL_PATTERN.search(text).group(1)
        key = KEY_PATTERN.search(text).group(1)
        assert url == f"http://127.0.0.1:{up.port}"
        children = child_pids(up.process.pid)
        assert len(children) == 2  # the API and the worker

        status, ready = http(f"{url}/readyz")
        assert status == 200
        assert ready["status"] == "ok"

        status, job = http(f"{url}/api/v1/jobs", key, {"name": "smoke", **tiny_spec(epochs=20)})
        assert status == 202
        deadline = time.monotonic() + 60
        while job["status"] not in ("succeeded", "failed"):
            assert time.monotonic() < deadline, job
            time.sleep(0.1)
            _, job = http(f"{url}/api/v1/jobs/{job['id']}", key)
        assert job["status"] == "succeeded"

        assert up.interrupt() == 0
        for pid in children:
            assert not Path(f"/proc/{pid}").exists() or _is_zombie(pid), f"child {pid} survived"
    finally:
        up.close()

    # A later start prints no key, and --demo trains the demo job with a key of its own.
    # Stopped mid-demo, the job is handed back; the next start resumes that same job
    # instead of queueing a second demo behind it. (A demo too long to end meanwhile.)
    again = Up(tmp_path, "--demo", DELTAFLOW_DEMO_EPOCHS="100000")
    try:
        text = again.read_until("  running")  # a line per tenth and per change of status
        assert KEY_PATTERN.search(text) is None
        assert "create-key --tenant NAME" in text
        demo_id = re.search(r"demo job (\w+) submitted", text).group(1)
        assert re.search(r"\[\.{30}\]  epoch \d+/100000  (loss \S+  acc \S+  )?running", text)
        assert again.interrupt() == 0
    finally:
        again.close()
    third = Up(tmp_path, "--demo", DELTAFLOW_DEMO_EPOCHS="100000")
    try:
        text = third.read_until(" resumed from epoch ")
        resumed = re.search(r"demo job (\w+) resumed from epoch (\d+)", text)
        assert resumed.group(1) == demo_id
        assert int(resumed.group(2)) >= 0
        assert "submitted" not in text
        assert third.interrupt() == 0
    finally:
        third.close()
    engine = make_engine(f"sqlite:///{tmp_path / 'var' / 'deltaflow.sqlite3'}")
    with engine.connect() as conn:
        keys = conn.execute(select(ApiKey.revoked_at)).scalars().all()
    engine.dispose()
    assert len(keys) == 3
    assert sum(revoked is not None for revoked in keys) == 2  # the demos' keys, revoked


def logs(tmp_path: Path) -> str:
    return "".join(
        f"\n--- {path.name}\n{path.read_text(errors='replace')[-3000:]}"
        for path in sorted((tmp_path / "var" / "logs").glob("*.log"))
    )


def _is_zombie(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "Z"
    except OSError:
        return True


@pytest.mark.integration
def test_up_refuses_a_port_in_use(tmp_path):
    import socket

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = subprocess.run(
            [DELTAFLOW, "up", "--port", str(port)],
            env=clean_env(tmp_path),
            capture_output=True,
            text=True,
            timeout=60,
        )
    assert result.returncode == 1
    assert "in use" in result.stdout


@pytest.mark.integration
def test_migrate_then_create_key_prints_only_a_working_key(tmp_path):
    env = clean_env(tmp_path)
    subprocess.run([DELTAFLOW, "migrate"], env=env, check=True, capture_output=True, timeout=60)
    url = f"sqlite:///{tmp_path / 'var' / 'deltaflow.sqlite3'}"
    engine = make_engine(url)
    assert {"jobs", "curve_points", "checkpoints", "api_keys"} <= set(
        inspect(engine).get_table_names()
    )
    engine.dispose()
    result = subprocess.run(
        [DELTAFLOW, "create-key", "--tenant", "acme"],
        env=env,
        check=True,
        capture_output=True,
        text=True,
        timeout=60,
    )
    (key,) = result.stdout.splitlines()
    assert key.startswith("dfk_")

    from service.app import create_app

    app = create_app({"database_url": url, "data_dir": tmp_path / "var"})
    client = app.test_client()
    assert client.get("/api/v1/jobs", headers={"Authorization": f"Bearer {key}"}).status_code == 200
    assert client.get("/api/v1/jobs", headers={"Authorization": "Bearer nope"}).status_code == 401


@pytest.mark.integration
def test_deltaflow_worker_sizes_blas_threads_and_trains(backend, worker_process):
    worker = worker_process(backend, command=[DELTAFLOW, "worker", "--concurrency", "1"])
    environ = Path(f"/proc/{worker.pid}/environ").read_bytes().split(b"\0")
    expected = blas_threads(1)["OPENBLAS_NUM_THREADS"]
    assert f"OPENBLAS_NUM_THREADS={expected}".encode() in environ
    job_id = insert_job(backend.factory, tiny_spec(epochs=10))
    from service.queue import send_train

    send_train(backend.settings(), job_id, "interactive")
    assert wait_for_status(backend.factory, job_id, {"succeeded", "failed"}).status == "succeeded"
