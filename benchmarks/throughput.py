"""End-to-end throughput of tiny training jobs beside raw Celery throughput, same broker.

    .venv/bin/python benchmarks/throughput.py [--jobs 200] [--noop 2000] [--epochs 5]
        [--brokers redis,rabbitmq] [--group-jobs 8]

Needs PostgreSQL and Redis on 127.0.0.1 (or the binaries, for throwaway instances), and
for ``--brokers rabbitmq`` RabbitMQ on 127.0.0.1:5672 (a virtual host of its own). For
one and then two worker processes (``celery -A worker.celery_app worker -Q
interactive,batch -c 1``, the production shape: acks_late, prefetch 1):

- **deltaflow**: one ``POST /api/v1/batches`` (the API in process, on PostgreSQL) with
  ``--jobs`` tiny jobs; jobs/s = jobs / (last ``finished_at`` - the moment before the
  POST). Every job is validated, committed, sent, claimed with a lease, trained, flushed
  and finished with its model stored — the whole path.
- **raw celery**: ``--noop`` messages of a task whose body is one Redis INCR (so the
  benchmark can see it ran), on a worker with the same configuration and broker.

The ratio deltaflow/raw says what the service's bookkeeping costs per job. Tiny jobs go
up to ``--group-jobs`` to a message (``DELTAFLOW_GROUP_JOBS``, the service's default
unless given; 1 sends each job alone, as before groups). Workers are
warmed up (one job each) before timing. Nothing is written outside a fresh PostgreSQL
database and a claimed Redis database number, both dropped afterwards.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from celery import Celery

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from service.config import Settings  # noqa: E402
from service.queue import celery_config  # noqa: E402

NOOP_QUEUE = "bench-noop"
GROUP_ENV: dict[str, str] = {}  # DELTAFLOW_GROUP_JOBS, if --group-jobs was given
NOOP_COUNTER = "bench:noop:done"
BROKER_ENV = "DELTAFLOW_BENCH_BROKER_URL"
COUNTER_ENV = "DELTAFLOW_BENCH_COUNTER_URL"  # Redis, whatever the broker


def _noop_app() -> Celery:
    """The raw-Celery baseline: the service's Celery configuration, a trivial task."""
    broker = os.environ.get(BROKER_ENV, "redis://127.0.0.1:6379/15")
    app = Celery("bench-noop", set_as_current=False)
    config = celery_config(Settings.from_env(env={}, broker_url=broker, data_dir=Path("var")))
    app.conf.update(config, task_default_queue=NOOP_QUEUE)
    return app


noop_app = _noop_app()


@noop_app.task(name="bench.noop", ignore_result=True)
def noop() -> None:
    _redis().incr(NOOP_COUNTER)


_REDIS: Any = None


def _redis() -> Any:
    global _REDIS
    if _REDIS is None:
        import redis

        url = os.environ.get(COUNTER_ENV) or os.environ.get(BROKER_ENV, "redis://127.0.0.1:6379/15")
        _REDIS = redis.Redis.from_url(url)
    return _REDIS


TINY_JOB = {
    "network": {
        "layers": [{"units": 4, "activation": "tanh"}],
        "output": {"activation": "softmax"},
        "loss": "cross_entropy",
    },
    "dataset": {"generator": "xor", "n_samples": 64, "seed": 0},
    "training": {"optimizer": {"name": "adam", "learning_rate": 0.05}, "epochs": 5},
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--jobs", type=int, default=200, help="tiny jobs per run")
    parser.add_argument("--noop", type=int, default=2000, help="no-op tasks per run")
    parser.add_argument("--epochs", type=int, default=5, help="epochs of each tiny job")
    parser.add_argument("--workers", default="1,2", help="worker process counts to measure")
    parser.add_argument("--brokers", default="redis", help="redis, rabbitmq or both")
    parser.add_argument(
        "--group-jobs", type=int, default=None, help="DELTAFLOW_GROUP_JOBS (default: the service's)"
    )
    args = parser.parse_args()
    if args.group_jobs is not None:
        GROUP_ENV["DELTAFLOW_GROUP_JOBS"] = str(args.group_jobs)

    from tests.support.servers import find_postgres, find_rabbitmq, find_redis

    scratch = Path(tempfile.mkdtemp(prefix="deltaflow-bench-"))
    postgres = find_postgres()
    redis_server = find_redis()
    rabbit = find_rabbitmq() if "rabbitmq" in args.brokers else None
    number = redis_server.claim_database()
    tables: dict[str, list] = {}
    try:
        counter = redis_server.url(number)
        os.environ[COUNTER_ENV] = counter
        for name in args.brokers.split(","):
            database = postgres.create_database()
            vhost = rabbit.create_vhost() if name == "rabbitmq" and rabbit else None
            broker = rabbit.url(vhost) if rabbit and vhost else counter
            url = postgres.sqlalchemy_url(database)
            rows = tables.setdefault(name, [])
            try:
                for workers in [int(n) for n in args.workers.split(",")]:
                    e2e, post = measure_service(
                        url, broker, scratch / name, workers, args.jobs, args.epochs
                    )
                    raw = measure_noop(broker, scratch / name, workers, args.noop)
                    rows.append((workers, e2e, post, raw))
                    print(
                        f"broker={name} workers={workers} deltaflow={e2e:.1f} jobs/s "
                        f"(POST {post:.2f} s) raw={raw:.1f} tasks/s",
                        flush=True,
                    )
            finally:
                postgres.drop_database(database)
                if rabbit and vhost:
                    rabbit.delete_vhost(vhost)
    finally:
        redis_server.release_database(number)
        postgres.stop()
        redis_server.stop()
        shutil.rmtree(scratch, ignore_errors=True)
    print()
    print(f"tiny jobs: xor 64 samples, 2-4-2 tanh/softmax, {args.epochs} epochs, adam;")
    group = GROUP_ENV.get("DELTAFLOW_GROUP_JOBS", str(Settings().group_jobs))
    print(f"{args.jobs} jobs and {args.noop} no-op tasks per run; 1 process per worker")
    print(f"tiny jobs per message (DELTAFLOW_GROUP_JOBS): {group}")
    for name, rows in tables.items():
        print()
        print(f"broker: {name}")
        print()
        print("| workers | deltaflow jobs/s | batch POST (s) | raw Celery no-op tasks/s | ratio |")
        print("|---:|---:|---:|---:|---:|")
        for workers, e2e, post, raw in rows:
            print(f"| {workers} | {e2e:.1f} | {post:.2f} | {raw:.1f} | {e2e / raw:.3f} |")


def _start_workers(
    count: int,
    env: dict[str, str],
    log_dir: Path,
    app: str,
    queues: str,
    launchers: list[list[str]] | None = None,
) -> list:
    """``count`` worker processes of one pool child each, started together, all ready.

    ``launchers[i]`` (if given) prefixes worker i's command and must exec it, e.g. ``ip
    netns exec …`` to run it on a namespaced host (``benchmarks/hosts.py``)."""
    from tests.support.workers import WorkerProcess

    if launchers is not None and len(launchers) != count:
        raise ValueError(f"{count} workers but {len(launchers)} launchers")
    workers = []
    for index in range(count):
        prefix = launchers[index] if launchers else []
        command = [
            *prefix,
            sys.executable, "-m", "celery", "-A", app, "worker",
            "--loglevel", "INFO", "--concurrency", "1", "--pool", "prefork",
            "--queues", queues, "--hostname", f"bench{index}@%h",
            "--without-gossip", "--without-mingle",
        ]  # fmt: skip
        workers.append(WorkerProcess(env, log_dir, command=command).start(wait=False))
    for worker in workers:
        worker.wait_ready()
    return workers


def measure_service(
    url: str,
    broker: str,
    scratch: Path,
    workers: int,
    jobs: int,
    epochs: int,
    launchers: list[list[str]] | None = None,
) -> tuple[float, float]:
    """Jobs/s from one batch POST of ``jobs`` tiny jobs to the last job's finished_at,
    and the seconds the POST itself took (validate, insert, commit, send every job)."""
    from sqlalchemy import func, select

    from service.app import create_app
    from service.db import transaction
    from service.migrate import upgrade
    from service.models import Job
    from service.tenants import create_tenant_key

    upgrade(url)
    data_dir = scratch / f"service-{workers}"
    env = {
        "DELTAFLOW_DATABASE_URL": url,
        "DELTAFLOW_BROKER_URL": broker,
        "DELTAFLOW_DATA_DIR": str(data_dir),
        **GROUP_ENV,
    }
    settings = Settings.from_env(env=env)
    app = create_app({"settings": settings})
    factory = app.extensions["deltaflow"].sessions
    with transaction(factory) as session:
        key = create_tenant_key(session, f"bench-{workers}-{time.time_ns()}")
    client = app.test_client()
    client.environ_base["HTTP_AUTHORIZATION"] = f"Bearer {key}"
    spec = {**TINY_JOB, "training": {**TINY_JOB["training"], "epochs": epochs}}
    procs = _start_workers(
        workers, env, data_dir / "logs", "worker.celery_app", "interactive,batch", launchers
    )
    try:
        warm = _submit(client, [spec] * workers)
        _wait_succeeded(factory, warm["id"], workers)
        started = datetime.now(UTC)
        batch = _submit(client, [spec] * jobs)
        submitted = (datetime.now(UTC) - started).total_seconds()
        _wait_succeeded(factory, batch["id"], jobs)
        with factory() as session:
            last = session.scalar(
                select(func.max(Job.finished_at)).where(Job.batch_id == batch["id"])
            )
        last = last if last.tzinfo else last.replace(tzinfo=UTC)
        return jobs / (last - started).total_seconds(), submitted
    finally:
        for proc in procs:
            proc.stop(timeout=30)
        app.extensions["deltaflow"].engine.dispose()


def _submit(client: Any, specs: list[dict[str, Any]]) -> dict[str, Any]:
    response = client.post("/api/v1/batches", json={"name": "bench", "jobs": specs})
    if response.status_code != 202:
        raise RuntimeError(
            f"submit failed: {response.status_code} {response.get_data(as_text=True)}"
        )
    return response.get_json()


def _wait_succeeded(factory: Any, batch_id: str, count: int, timeout: float = 600.0) -> None:
    from sqlalchemy import func, select

    from service.models import Job

    deadline = time.monotonic() + timeout
    while True:
        with factory() as session:
            done = session.execute(
                select(Job.status, func.count())
                .where(Job.batch_id == batch_id)
                .group_by(Job.status)
            ).all()
        by_status = dict(done)
        if by_status.get("succeeded", 0) == count:
            return
        if by_status.get("failed") or time.monotonic() > deadline:
            raise RuntimeError(f"batch {batch_id} did not succeed: {by_status}")
        time.sleep(0.02)


def measure_noop(
    broker: str,
    scratch: Path,
    workers: int,
    count: int,
    launchers: list[list[str]] | None = None,
) -> float:
    """Tasks/s of ``count`` no-op messages, from the first send to the last INCR."""
    os.environ[BROKER_ENV] = broker
    env = {BROKER_ENV: broker, COUNTER_ENV: os.environ[COUNTER_ENV]}
    redis_client = _redis_for(os.environ[COUNTER_ENV])
    procs = _start_workers(
        workers,
        env,
        scratch / f"noop-{workers}",
        "benchmarks.throughput:noop_app",
        NOOP_QUEUE,
        launchers,
    )
    try:
        client_app = _noop_app()
        for _ in range(workers):  # warm-up: one task per worker
            client_app.send_task("bench.noop", queue=NOOP_QUEUE)
        _wait_counter(redis_client, workers)
        redis_client.delete(NOOP_COUNTER)
        start = time.perf_counter()
        with client_app.producer_or_acquire() as producer:
            for _ in range(count):
                client_app.send_task("bench.noop", queue=NOOP_QUEUE, producer=producer)
        _wait_counter(redis_client, count)
        return count / (time.perf_counter() - start)
    finally:
        for proc in procs:
            proc.stop(timeout=30)
        redis_client.delete(NOOP_COUNTER)


def _redis_for(url: str) -> Any:
    import redis

    return redis.Redis.from_url(url)


def _wait_counter(client: Any, count: int, timeout: float = 300.0) -> None:
    deadline = time.monotonic() + timeout
    while int(client.get(NOOP_COUNTER) or 0) < count:
        if time.monotonic() > deadline:
            raise RuntimeError(f"only {client.get(NOOP_COUNTER)} of {count} no-op tasks ran")
        time.sleep(0.002)


if __name__ == "__main__":
    main()
