"""Throughput of worker processes on one machine and of workers on namespaced hosts.

    nice -n 10 .venv/bin/python benchmarks/hosts.py [--workers 1,2,4] [--hosts 1,2,3]
        [--epochs 5,200] [--jobs 200] [--noop 2000]

Needs root and iproute2 (network namespaces, ``tests/support/netns.py``, as the
multi-host suite builds them) and the PostgreSQL and Redis binaries. It builds a bridge
and a ``core`` host running a throwaway PostgreSQL and Redis bound to core's address,
plus ``host1`` … ``hostN``, each a network and UTS namespace with one veth cable into the
bridge. Then, with ``benchmarks/throughput.py``'s measurement (one batch POST of
``--jobs`` jobs through the app in this process, jobs/s to the last ``finished_at``; and
``--noop`` raw Celery no-op tasks, one Redis INCR each):

- **one machine**: 1, 2, 4 (``--workers``) worker processes on ``core`` itself, beside
  PostgreSQL and Redis;
- **namespaced hosts**: 1, 2, 3 (``--hosts``) worker hosts with one worker process each,
  reaching PostgreSQL and Redis over the bridge, configured by ``DELTAFLOW_DATABASE_URL``
  and ``DELTAFLOW_BROKER_URL`` only (plus a data directory of their own).

Each worker process is ``celery -A worker.celery_app worker -c 1`` (acks_late, prefetch
1), as in ``throughput.py``. Efficiency = jobs/s of N / (N × jobs/s of one), within the
same placement and job size. Every ``--epochs`` value is a row set: the default 5 epochs
are throughput.py's tiny jobs, bound by PostgreSQL and the broker; 200 epochs make the
training itself a larger share of each job. The namespaces share the machine's cores
(and its clock): they show the cost of the network hops and how work spreads, not more
CPU. Everything is removed afterwards, also after a failure.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import shutil
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from benchmarks.throughput import COUNTER_ENV, measure_noop, measure_service  # noqa: E402
from tests.support.netns import Host, NetnsUnavailable, Network, check_support  # noqa: E402
from tests.support.servers import ThrowawayPostgres, ThrowawayRedis  # noqa: E402


@dataclass(frozen=True)
class Placement:
    """Where a run's worker processes go: ``core`` (one machine) or N worker hosts."""

    hosts: str  # "core" or the number of worker hosts
    launchers: list[list[str]]  # one command prefix per worker process

    @property
    def workers(self) -> int:
        return len(self.launchers)


@dataclass
class Row:
    placement: Placement
    epochs: int
    jobs_per_second: float
    post_seconds: float
    noop_per_second: float


def _on(host: Host, data_dir: Path) -> list[str]:
    """Run on ``host`` with a data directory (dataset cache) of its own."""
    return host.command(["env", f"DELTAFLOW_DATA_DIR={data_dir / host.name}"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--workers", default="1,2,4", help="worker processes on core")
    parser.add_argument("--hosts", default="1,2,3", help="worker hosts, one process each")
    parser.add_argument("--epochs", default="5,200", help="job sizes, one row set each")
    parser.add_argument("--jobs", type=int, default=200, help="jobs per run")
    parser.add_argument("--noop", type=int, default=2000, help="no-op tasks per run")
    args = parser.parse_args()
    workers = [int(n) for n in args.workers.split(",") if n]
    hosts = [int(n) for n in args.hosts.split(",") if n]
    epochs = [int(n) for n in args.epochs.split(",")]

    try:
        check_support()
    except NetnsUnavailable as exc:
        sys.exit(f"benchmarks/hosts.py needs network namespaces: {exc}")

    before = os.getloadavg()
    rows: list[Row] = []
    scratch = Path(tempfile.mkdtemp(prefix="deltaflow-bench-hosts-"))
    with contextlib.ExitStack() as teardown:
        teardown.callback(shutil.rmtree, scratch, ignore_errors=True)
        network = Network()
        teardown.callback(network.destroy)
        core = network.add_host("core")
        postgres = ThrowawayPostgres(host=core.address, launcher=core.launcher)
        teardown.callback(postgres.destroy)
        postgres.start()
        redis = ThrowawayRedis(host=core.address, launcher=core.launcher)
        teardown.callback(redis.destroy)
        redis.start()
        worker_hosts = [network.add_host(f"host{n}") for n in range(1, max(hosts, default=0) + 1)]

        url = postgres.create_database("deltaflow_bench")
        broker = redis.url(0)
        os.environ[COUNTER_ENV] = redis.url(1)
        print(
            f"core {core.address}: PostgreSQL :{postgres.port}, Redis :{redis.port}; "
            f"worker hosts: {', '.join(h.address for h in worker_hosts) or '-'}",
            flush=True,
        )
        placements = [Placement("core", [_on(core, scratch)] * n) for n in workers] + [
            Placement(str(n), [_on(host, scratch) for host in worker_hosts[:n]]) for n in hosts
        ]
        for placement in placements:
            work = scratch / f"{placement.hosts}-{placement.workers}"
            raw = measure_noop(broker, work, placement.workers, args.noop, placement.launchers)
            for size in epochs:
                e2e, post = measure_service(
                    url, broker, work, placement.workers, args.jobs, size, placement.launchers
                )
                rows.append(Row(placement, size, e2e, post, raw))
                print(
                    f"hosts={placement.hosts} workers={placement.workers} epochs={size} "
                    f"deltaflow={e2e:.1f} jobs/s (POST {post:.2f} s) raw={raw:.1f} tasks/s",
                    flush=True,
                )
    after = os.getloadavg()
    print()
    print("jobs: xor 64 samples, 2-4-2 tanh/softmax, adam (benchmarks/throughput.py's);")
    print(f"{args.jobs} jobs and {args.noop} no-op tasks per run; 1 process per worker;")
    print("hosts 'core': the worker processes run beside PostgreSQL and Redis (one machine)")
    print(f"load average before: {_load(before)}; after: {_load(after)}")
    for size in epochs:
        print()
        print(f"broker: redis, {size} epochs per job")
        print()
        print("| hosts | workers | deltaflow jobs/s | efficiency | raw Celery no-op tasks/s |")
        print("|---|---:|---:|---:|---:|")
        for row in (row for row in rows if row.epochs == size):
            print(
                f"| {row.placement.hosts} | {row.placement.workers} | {row.jobs_per_second:.1f} "
                f"| {_efficiency(row, rows):.2f} | {row.noop_per_second:.1f} |"
            )


def _efficiency(row: Row, rows: list[Row]) -> float:
    """jobs/s(N) / (N × jobs/s(1)) against the one-worker row of the same placement kind."""
    one_machine = row.placement.hosts == "core"
    single = next(
        (
            other
            for other in rows
            if other.epochs == row.epochs
            and other.placement.workers == 1
            and (other.placement.hosts == "core") == one_machine
        ),
        None,
    )
    if single is None:
        return float("nan")
    return row.jobs_per_second / (row.placement.workers * single.jobs_per_second)


def _load(values: tuple[float, float, float]) -> str:
    return ", ".join(f"{value:.2f}" for value in values)


if __name__ == "__main__":
    main()
