"""What a downsampled curve costs in the kernel, without HTTP: the M4 reads of issue 13.

    .venv/bin/python benchmarks/curves.py [--long-epochs 10000] [--batch-jobs 100]
        [--batch-epochs 1000] [--repeats 30]

Starts PostgreSQL (a fresh database on 127.0.0.1:5432, or a throwaway server; removed
afterwards), migrates it, writes curves with ``service.curve_store.insert_points`` as a run's
flushes do (100 points each, so the stored levels are kept as in production), runs
``ANALYZE`` as autovacuum would, and then times, on one connection and in process:

- the overview of one long job (``job_curve`` with ``max_points`` 200, 500, 2000);
- the overview of a whole batch (``batch_curves`` with ``max_points=200``, points and
  ``format=columns``), with the size of its JSON answer (orjson, as the API writes it);
- one 100-point flush with its levels.

Wall time and this process's CPU time (median of ``--repeats``) are printed side by side:
on a shared machine the wall time includes waiting for a core, the CPU time does not.
PostgreSQL's own time is in the wall column only. The load average is printed too.
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from benchmarks.polling import synthetic_point  # noqa: E402
from benchmarks.stack import Stack, load_average  # noqa: E402


def timed(fn: Any, repeats: int) -> tuple[float, float, Any]:
    """(median wall ms, median CPU ms, last result) of ``fn()``."""
    fn()
    walls, cpus, result = [], [], None
    for _ in range(repeats):
        wall, cpu = time.perf_counter(), time.process_time()
        result = fn()
        cpus.append(time.process_time() - cpu)
        walls.append(time.perf_counter() - wall)
    return statistics.median(walls) * 1000, statistics.median(cpus) * 1000, result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--long-epochs", type=int, default=10_000)
    parser.add_argument("--batch-jobs", type=int, default=100)
    parser.add_argument("--batch-epochs", type=int, default=1000)
    parser.add_argument("--repeats", type=int, default=30)
    args = parser.parse_args()

    from sqlalchemy import select, text, update

    from service import curve_store, curves
    from service.api.plumbing import dumps
    from service.config import Limits
    from service.db import make_engine, make_sessionmaker, transaction
    from service.models import Batch, Job, Tenant
    from service.tenants import create_tenant_key

    print(f"load average at start {load_average()}", flush=True)
    with Stack() as stack:
        engine = make_engine(stack.database_url)
        factory = make_sessionmaker(engine)
        rng = random.Random(0)
        try:
            with transaction(factory) as session:
                create_tenant_key(session, "bench")
                tenant = session.scalar(select(Tenant.id))
                batch = Batch(tenant_id=tenant, name="bench", spec={}, varied=[])
                session.add(batch)
                session.flush()
                long_job = Job(tenant_id=tenant, name="long", spec={}, epochs=args.long_epochs)
                jobs = [
                    Job(
                        tenant_id=tenant,
                        name=f"b{i}",
                        spec={},
                        epochs=args.batch_epochs,
                        batch_id=batch.id,
                        batch_index=i,
                    )  # fmt: skip
                    for i in range(args.batch_jobs)
                ]
                session.add_all([long_job, *jobs])
                session.flush()
                batch_id, long_id, job_ids = batch.id, long_job.id, [j.id for j in jobs]
            started = time.perf_counter()
            flushes: list[float] = []
            plans = {
                long_id: (args.long_epochs, 3),
                **dict.fromkeys(job_ids, (args.batch_epochs, 0)),
            }
            for job_id, (epochs, layers) in plans.items():
                for first in range(1, epochs + 1, 100):
                    last = min(first + 99, epochs)
                    points = [
                        synthetic_point(e, epochs, rng, layers) for e in range(first, last + 1)
                    ]
                    begin = time.perf_counter()
                    with transaction(factory) as session:
                        curve_store.insert_points(session, job_id, points)
                        session.execute(update(Job).where(Job.id == job_id).values(epoch=last))
                    flushes.append(time.perf_counter() - begin)
            with engine.connect() as connection:
                connection.execution_options(isolation_level="AUTOCOMMIT").execute(text("ANALYZE"))
            seeded = time.perf_counter() - started
            print(f"seeded {sum(e for e, _ in plans.values())} points in {len(flushes)} flushes, "
                  f"{seeded:.1f} s; one 100-point flush with its levels: median "
                  f"{statistics.median(flushes) * 1000:.2f} ms", flush=True)  # fmt: skip

            limits = Limits()
            print()
            print("| read | points | JSON bytes | wall ms (median) | CPU ms (median) |")
            print("|---|---:|---:|---:|---:|")
            with factory() as session:
                for max_points in (200, 500, 2000):
                    ask = curves.CurveAsk(max_points=max_points)
                    wall, cpu, answer = timed(
                        lambda a=ask: curves.job_curve(
                            session, long_id, "succeeded", args.long_epochs, a, limits
                        ),
                        args.repeats,
                    )
                    size, count = len(dumps(answer)), len(answer["points"])
                    what = f"{args.long_epochs}-epoch job, max_points={max_points}"
                    print(f"| {what} | {count} | {size} | {wall:.2f} | {cpu:.2f} |")
                batch_row = session.get(Batch, batch_id)
                for columns in (False, True):
                    ask = curves.CurveAsk(max_points=200, columns=columns)
                    wall, cpu, answer = timed(
                        lambda a=ask: dumps(
                            curves.batch_curves(session, batch_row, None, a, limits)
                        ),
                        max(3, args.repeats // 5),
                    )
                    layout = "format=columns" if columns else "points"
                    what = f"{args.batch_jobs} jobs x {args.batch_epochs} epochs, max_points=200"
                    print(f"| {what}, {layout} (with JSON) | | {len(answer)} | "
                          f"{wall:.1f} | {cpu:.1f} |")  # fmt: skip
                wall, cpu, _ = timed(lambda: session.execute(text("SELECT 1")).all(), args.repeats)
                print(f"| `SELECT 1` (one round trip) | | | {wall:.3f} | {cpu:.3f} |")
        finally:
            engine.dispose()
    print()
    print(f"load average at end {load_average()}")


if __name__ == "__main__":
    main()
