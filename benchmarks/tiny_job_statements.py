"""What one tiny job costs the worker in database work: commits, statements, time.

    .venv/bin/python benchmarks/tiny_job_statements.py [--jobs 29] [--group 1] [--profile]

In this process, on a fresh PostgreSQL database (dropped afterwards) with a claimed Redis
database number as the broker: one batch of ``--jobs`` + 1 tiny jobs (the spec of
``benchmarks/throughput.py``) is submitted through the real app, then
``worker.runner.run_delivery`` runs them one after the other as a worker's pool child
would (the first one warms up, uncounted) — or, with ``--group N``,
``worker.groups.run_group`` over N jobs at a time, as a message of a group of tiny jobs
runs them. SQLAlchemy events on the worker's engine count
the statements and commits per job, and the time spent inside each kind of statement.

The counts do not depend on the machine's load; the times do (each statement is a round
trip to a PostgreSQL server that shares the cores). ``--profile`` prints a cProfile of
the timed runs. The Celery task around a run (``worker.tasks.train``) adds a webhook
relay only when the job's tenant has a webhook (none here).
"""

from __future__ import annotations

import argparse
import cProfile
import os
import pstats
import sys
import tempfile
import time
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from benchmarks.throughput import TINY_JOB  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--jobs", type=int, default=29, help="tiny jobs counted")
    parser.add_argument("--group", type=int, default=1, help="jobs per message (1: run_delivery)")
    parser.add_argument("--profile", action="store_true", help="print a cProfile of the runs")
    args = parser.parse_args()

    from tests.support.servers import find_postgres, find_redis

    postgres, redis_server = find_postgres(), find_redis()
    number = redis_server.claim_database()
    database = postgres.create_database()
    engines: list[Any] = []
    try:
        with tempfile.TemporaryDirectory(prefix="deltaflow-statements-") as data_dir:
            env = {
                "DELTAFLOW_DATABASE_URL": postgres.sqlalchemy_url(database),
                "DELTAFLOW_BROKER_URL": redis_server.url(number),
                "DELTAFLOW_DATA_DIR": data_dir,
            }
            os.environ.update(env)
            measure(args.jobs, args.group, args.profile, engines)
    finally:
        for engine in engines:
            engine.dispose()
        postgres.drop_database(database)
        redis_server.release_database(number)
        postgres.stop()
        redis_server.stop()


def measure(jobs: int, group: int, profile: bool, engines: list[Any]) -> None:
    from sqlalchemy import event, select

    from service.app import create_app
    from service.config import Settings
    from service.db import transaction
    from service.migrate import upgrade
    from service.models import Job
    from service.tenants import create_tenant_key
    from worker.groups import run_group
    from worker.runner import Outcome, run_delivery
    from worker.runtime import runtime

    settings = Settings.from_env()
    upgrade(settings.database_url)
    app = create_app({"settings": settings})
    engines.append(app.extensions["deltaflow"].engine)
    factory = app.extensions["deltaflow"].sessions
    with transaction(factory) as session:
        key = create_tenant_key(session, "statements")
    client = app.test_client()
    client.environ_base["HTTP_AUTHORIZATION"] = f"Bearer {key}"
    response = client.post(
        "/api/v1/batches", json={"name": "tiny", "jobs": [TINY_JOB] * (jobs + 1)}
    )
    if response.status_code != 202:
        raise RuntimeError(
            f"submit failed: {response.status_code} {response.get_data(as_text=True)}"
        )
    batch_id = response.get_json()["id"]
    with factory() as session:
        ids = list(
            session.scalars(
                select(Job.id).where(Job.batch_id == batch_id).order_by(Job.batch_index)
            )
        )

    rt = runtime()
    engine = rt.factory.kw["bind"]
    engines.append(engine)
    counts: Counter[str] = Counter()
    seconds: dict[str, float] = defaultdict(float)
    commits = [0]

    @event.listens_for(engine, "before_cursor_execute")
    def _before(conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        conn.info["statement_started"] = time.perf_counter()

    @event.listens_for(engine, "after_cursor_execute")
    def _after(conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        kind = " ".join(statement.split())[:90]
        counts[kind] += 1
        seconds[kind] += time.perf_counter() - conn.info["statement_started"]

    @event.listens_for(engine, "commit")
    def _commit(_conn: Any) -> None:
        commits[0] += 1

    if run_delivery(ids[0], rt=rt).outcome != Outcome.succeeded:  # warm-up
        raise RuntimeError("the warm-up job did not succeed")
    counts.clear()
    seconds.clear()
    commits[0] = 0
    profiler = cProfile.Profile() if profile else None
    started, cpu = time.perf_counter(), time.process_time()
    if profiler is not None:
        profiler.enable()
    for start in range(1, len(ids), group):
        chunk = ids[start : start + group]
        ran = run_group(chunk, rt=rt) if group > 1 else [run_delivery(chunk[0], rt=rt)]
        if any(one.outcome != Outcome.succeeded for one in ran) or len(ran) != len(chunk):
            raise RuntimeError(f"jobs {chunk}: {[one.outcome for one in ran]}")
    if profiler is not None:
        profiler.disable()
    wall, cpu = time.perf_counter() - started, time.process_time() - cpu
    n = len(ids) - 1
    print(f"{n} tiny jobs, per job: {commits[0] / n:.2f} commits, "
          f"{sum(counts.values()) / n:.2f} statements, {wall / n * 1000:.1f} ms wall, "
          f"{cpu / n * 1000:.1f} ms CPU of this process")  # fmt: skip
    print()
    print("| per job | ms per job | statement |")
    print("|---:|---:|---|")
    for kind, count in counts.most_common():
        print(f"| {count / n:.2f} | {seconds[kind] / n * 1000:.2f} | `{kind}` |")
    if profiler is not None:
        pstats.Stats(profiler).sort_stats("cumulative").print_stats(r"(worker|service)/", 40)


if __name__ == "__main__":
    main()
