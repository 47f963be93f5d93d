"""One scenario's Deltaflow: a database, a broker, real worker processes and the real API.

``postgres-redis`` is the production shape on the throwaway servers; ``embedded`` is the
default (SQLite + kombu's filesystem broker under a temporary ``DELTAFLOW_DATA_DIR``).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from service.config import Settings
from service.db import make_engine, make_sessionmaker
from service.migrate import upgrade

from .api import Api
from .procs import WorkerProcess

# Short lease, flush, checkpoint and reaper periods, so faults heal within seconds.
FAST_SETTINGS = {
    "DELTAFLOW_LEASE_SECONDS": "3",
    "DELTAFLOW_FLUSH_SECONDS": "0.2",
    "DELTAFLOW_CHECKPOINT_EPOCHS": "20",
    "DELTAFLOW_CHECKPOINT_SECONDS": "2",
    "DELTAFLOW_REAPER_INTERVAL_SECONDS": "0.5",
    "DELTAFLOW_REQUEUE_AFTER_SECONDS": "2",
    "DELTAFLOW_MAX_ATTEMPTS": "3",
    "DELTAFLOW_BROKER_POLLING_INTERVAL": "0.1",
}

# Two cores shared by every process of the suite: one BLAS thread per worker child.
SINGLE_THREADED = {
    "OMP_NUM_THREADS": "1",
    "OPENBLAS_NUM_THREADS": "1",
    "MKL_NUM_THREADS": "1",
}

VENV_BIN = Path(sys.executable).parent


class Stack:
    """Settings, database access and worker processes for one scenario."""

    def __init__(
        self,
        backend: str,
        tmp_dir: Path,
        database_url: str | None = None,
        broker_url: str | None = None,
        extra_env: dict[str, str] | None = None,
    ) -> None:
        self.backend = backend
        self.tmp_dir = tmp_dir
        self.data_dir = tmp_dir / "data"
        self.log_dir = tmp_dir / "logs"
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.log_dir.mkdir(parents=True, exist_ok=True)
        env = {k: v for k, v in os.environ.items() if not k.startswith("DELTAFLOW_")}
        env.update(FAST_SETTINGS)
        env.update(SINGLE_THREADED)
        env["PYTHONUNBUFFERED"] = "1"
        env["DELTAFLOW_DATA_DIR"] = str(self.data_dir)
        if database_url:
            env["DELTAFLOW_DATABASE_URL"] = database_url
        if broker_url:
            env["DELTAFLOW_BROKER_URL"] = broker_url
        env.update(extra_env or {})
        self.env = env
        self.settings = Settings.from_env(env)
        self.engine: Engine = make_engine(self.settings.database_url)
        self.factory: sessionmaker[Session] = make_sessionmaker(self.engine)
        self.workers: list[WorkerProcess] = []
        upgrade(self.settings.database_url)
        self.api = Api(self.settings, self.factory)

    def __repr__(self) -> str:
        return f"Stack({self.backend}, workers={len(self.workers)})"

    def worker_command(self, name: str, concurrency: int) -> list[str]:
        """The production worker command, as operators run it (it execs Celery)."""
        return [
            str(VENV_BIN / "deltaflow"),
            "worker",
            "--concurrency",
            str(concurrency),
            "--hostname",
            f"{name}@%h",
        ]

    @staticmethod
    def celery_worker_args(name: str, concurrency: int) -> list[str]:
        """The arguments ``deltaflow worker`` passes to ``celery worker`` (for wrappers)."""
        return [
            "--concurrency",
            str(concurrency),
            "--pool",
            "prefork",
            "--queues",
            "interactive,batch",
            "--loglevel",
            "INFO",
            "--without-gossip",
            "--without-mingle",
            "--hostname",
            f"{name}@%h",
        ]

    def start_worker(
        self,
        name: str,
        concurrency: int = 2,
        command: list[str] | None = None,
        env: dict[str, str] | None = None,
        wait: bool = True,
    ) -> WorkerProcess:
        worker = WorkerProcess(
            name,
            command or self.worker_command(name, concurrency),
            {**self.env, **(env or {})},
            self.log_dir,
        )
        self.workers.append(worker)
        worker.start()
        if wait:
            worker.wait_ready(pool_size=concurrency)
        return worker

    def close(self) -> None:
        for worker in self.workers:
            worker.stop()
        self.api.close()
        self.engine.dispose()
