"""Deltaflow spread over namespaced hosts, started as operators start it on real machines.

- ``core``: PostgreSQL, Redis and the API (``deltaflow api``: gunicorn), each bound to the
  core host's address only;
- ``host1`` … ``hostN``: one Celery worker each (``celery -A worker.celery_app worker``,
  node ``worker@hostK``), configured by ``DELTAFLOW_*`` variables pointing at ``core``.

The test process talks to the API over HTTP and reads the database for its checks, both
through the bridge. It reuses the fault suite's throwaway servers, worker processes and
settings (``tests/faults/harness``), so the leases here are the same 3 s.
"""

from __future__ import annotations

import contextlib
import re
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import requests
from celery import Celery
from sqlalchemy.orm import Session, sessionmaker

from tests.faults.harness.procs import WorkerProcess
from tests.faults.harness.stack import VENV_BIN, Stack
from tests.faults.harness.waiting import wait_until
from tests.support.netns import Host, Network
from tests.support.servers import ThrowawayPostgres, ThrowawayRedis, free_port

from . import write_log

START_SECONDS = 120.0  # generous: three workers and gunicorn start at once on 2 cores
HTTP_SECONDS = 10.0
CLAIMED = re.compile(r"job=(\w+) claimed attempt=(\d+)")


@dataclass(frozen=True)
class Claim:
    """One run of a job: which host claimed it, with which fencing token."""

    job_id: str
    attempt: int
    host: str


class HttpApi:
    """The API on the core host, over real HTTP, as a client on another machine uses it."""

    def __init__(self, base_url: str, headers: dict[str, str]) -> None:
        self.base_url = base_url
        self.session = requests.Session()
        self.session.headers.update(headers)

    def ready(self) -> bool:
        root = self.base_url.rsplit("/api/", 1)[0]
        return self.session.get(f"{root}/readyz", timeout=HTTP_SECONDS).status_code == 200

    def post(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        response = self.session.post(f"{self.base_url}{path}", json=body, timeout=HTTP_SECONDS)
        assert response.status_code == 202, response.text
        return response.json()

    def submit(self, body: dict[str, Any]) -> str:
        return self.post("/jobs", body)["id"]

    def submit_batch(self, body: dict[str, Any]) -> list[str]:
        return self.post("/batches", body)["job_ids"]

    def close(self) -> None:
        self.session.close()


class Cluster:
    """The core host, the worker hosts, and everything needed to check on them.

    ``stack`` is the fault suite's ``Stack`` on the core host's database and broker: its
    ``factory``/``settings`` serve the audits and ``stack.workers`` are the hosts' workers.
    Everything started is torn down by ``close`` in reverse order, even after a failure.
    """

    backend = "multihost"

    def __init__(self, tmp_dir: Path, worker_hosts: int = 3) -> None:
        self._teardown = contextlib.ExitStack()
        try:
            self._build(tmp_dir, worker_hosts)
        except BaseException:
            self.close()
            raise

    def _build(self, tmp_dir: Path, worker_hosts: int) -> None:
        network = Network()
        self._teardown.callback(network.destroy)
        self.network = network
        self.core = core = network.add_host("core")

        postgres = ThrowawayPostgres(host=core.address, launcher=core.launcher)
        self._teardown.callback(postgres.destroy)
        postgres.start()
        redis = ThrowawayRedis(host=core.address, launcher=core.launcher)
        self._teardown.callback(redis.destroy)
        redis.start()

        self.stack = Stack(
            self.backend,
            tmp_dir,
            database_url=postgres.create_database("deltaflow"),
            broker_url=redis.url(),
        )
        self._teardown.callback(self.stack.close)
        write_log.install(self.stack.engine)

        port = str(free_port())
        api = WorkerProcess(
            "api",
            core.command([str(VENV_BIN / "deltaflow"), "api", "--host", core.address,
                          "--port", port, "--workers", "1"]),
            self.stack.env,
            self.stack.log_dir,
        )  # fmt: skip
        self._teardown.callback(api.stop)
        api.start()

        self.hosts = [network.add_host(f"host{n}") for n in range(1, worker_hosts + 1)]
        for host in self.hosts:
            self.stack.start_worker(
                host.name,
                concurrency=1,
                command=host.command(celery_worker_command()),
                env={"DELTAFLOW_DATA_DIR": str(tmp_dir / host.name)},
                wait=False,
            )
        for worker in self.stack.workers:
            worker.wait_ready(pool_size=1, timeout=START_SECONDS)

        self.api = HttpApi(f"http://{core.address}:{port}/api/v1", self.stack.api.headers)
        self._teardown.callback(self.api.close)
        wait_until(self.api.ready, START_SECONDS, "the API on core", describe=api.log_tail)

        self._control = Celery(broker=redis.url(), set_as_current=False)
        self._teardown.callback(self._control.close)

    def __repr__(self) -> str:
        names = ", ".join(host.name for host in self.hosts)
        return f"Cluster(core={self.core.address}, hosts=[{names}])"

    @property
    def factory(self) -> sessionmaker[Session]:
        return self.stack.factory

    def host(self, name: str) -> Host:
        return next(host for host in self.hosts if host.name == name)

    def worker_of(self, host: Host) -> WorkerProcess:
        return next(worker for worker in self.stack.workers if worker.name == host.name)

    def claims(self) -> list[Claim]:
        """Every claim any host's worker logged (``job=… claimed attempt=…``)."""
        return [
            Claim(match.group(1), int(match.group(2)), worker.name)
            for worker in self.stack.workers
            for match in CLAIMED.finditer(worker.log_text())
        ]

    def answers_ping(self, host: Host) -> bool:
        """The host's worker answers a Celery ping through the broker (it is connected)."""
        node = f"worker@{host.name}"
        replies = self._control.control.ping(destination=[node], timeout=1.0)
        return any(node in reply for reply in replies)

    def close(self) -> None:
        self._teardown.close()


def celery_worker_command() -> list[str]:
    """The bare Celery worker as on a real host; node name ``worker@<hostname>``."""
    return [
        sys.executable, "-m", "celery", "-A", "worker.celery_app", "worker",
        *Stack.celery_worker_args("worker", concurrency=1),
    ]  # fmt: skip
