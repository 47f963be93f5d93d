"""Throughput of worker processes on one machine and of workers on namespaced hosts.

    nice -n 10 .venv/bin/python benchmarks/hosts.py [--workers 1,2,4] [--hosts 1,2,3]
        [--epochs 5,200] [--jobs 200] [--noop 2000] [--brokers redis,rabbitmq]

Needs root and iproute2 (network namespaces, ``tests/support/netns.py``, as the
multi-host suite builds them) and the PostgreSQL and Redis binaries (and Debian's
``rabbitmq-server`` for ``--brokers rabbitmq``). It builds a bridge and a ``core`` host
running a throwaway PostgreSQL and Redis (and RabbitMQ) bound to core's address, plus
``host1`` … ``hostN``, each a network and UTS namespace with one veth cable into the
bridge. The machine's own servers are not used. Then, with ``benchmarks/throughput.py``'s
measurement (one batch POST of ``--jobs`` jobs through the app in this process, jobs/s to
the last ``finished_at``; and ``--noop`` raw Celery no-op tasks, one Redis INCR each):

- **one machine**: 1, 2, 4 (``--workers``) worker processes on ``core`` itself, beside
  PostgreSQL and the broker;
- **namespaced hosts**: 1, 2, 3 (``--hosts``) worker hosts with one worker process each,
  reaching PostgreSQL and the broker over the bridge, configured by ``DELTAFLOW_DATABASE_URL``
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
import pwd
import shutil
import signal
import subprocess
import sys
import tempfile
import time
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
    broker: str
    placement: Placement
    epochs: int
    jobs_per_second: float
    post_seconds: float
    noop_per_second: float


def _on(host: Host, data_dir: Path) -> list[str]:
    """Run on ``host`` with a data directory (dataset cache) of its own."""
    return host.command(["env", f"DELTAFLOW_DATA_DIR={data_dir / host.name}"])


class ThrowawayRabbitMQ:
    """A RabbitMQ node of our own on ``host`` (its own epmd, as the namespace has its own
    loopback), run as the ``rabbitmq`` user from a temporary folder; ``guest`` may log in
    from other hosts (``loopback_users = none``). Killed with its process group."""

    START_SECONDS = 120.0

    def __init__(self, host: Host) -> None:
        self.host = host
        self.root = Path(tempfile.mkdtemp(prefix="deltaflow-bench-rabbit-"))
        self.process: subprocess.Popen[bytes] | None = None

    def url(self) -> str:
        return f"amqp://guest:guest@{self.host.address}:5672//"

    def start(self) -> None:
        user = pwd.getpwnam("rabbitmq")
        for name in ("mnesia", "log", "home"):
            (self.root / name).mkdir()
        (self.root / "rabbitmq.conf").write_text(
            f"loopback_users = none\nlisteners.tcp.default = {self.host.address}:5672\n"
        )
        (self.root / "rabbitmq-env.conf").write_text("")  # not /etc/rabbitmq's node name
        (self.root / "enabled_plugins").write_text("[].\n")
        shutil.copy("/var/lib/rabbitmq/.erlang.cookie", self.root / "home" / ".erlang.cookie")
        for path in [self.root, *self.root.rglob("*")]:
            os.chown(path, user.pw_uid, user.pw_gid)
        env = {
            "PATH": os.environ["PATH"],
            "HOME": str(self.root / "home"),
            "RABBITMQ_CONF_ENV_FILE": str(self.root / "rabbitmq-env.conf"),
            "RABBITMQ_NODENAME": "bench@localhost",
            "RABBITMQ_CONFIG_FILE": str(self.root / "rabbitmq.conf"),
            "RABBITMQ_MNESIA_BASE": str(self.root / "mnesia"),
            "RABBITMQ_LOG_BASE": str(self.root / "log"),
            "RABBITMQ_ENABLED_PLUGINS_FILE": str(self.root / "enabled_plugins"),
            "ERL_EPMD_ADDRESS": "127.0.0.1",
        }
        log = (self.root / "server.log").open("ab")
        self.process = subprocess.Popen(
            self.host.command(
                ["setpriv", f"--reuid={user.pw_uid}", f"--regid={user.pw_gid}",
                 "--clear-groups", "/usr/lib/rabbitmq/bin/rabbitmq-server"]
            ),
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )  # fmt: skip
        log.close()
        deadline = time.monotonic() + self.START_SECONDS
        while not self._answers():
            if self.process.poll() is not None or time.monotonic() > deadline:
                tail = (self.root / "server.log").read_text(errors="replace")[-2000:]
                raise RuntimeError(f"throwaway RabbitMQ did not start:\n{tail}")
            time.sleep(1)

    def _answers(self) -> bool:
        from kombu import Connection

        try:
            with Connection(self.url(), connect_timeout=2) as conn:
                conn.ensure_connection(max_retries=0, timeout=2)
        except Exception:  # amqp's and the socket's errors alike: not up yet
            return False
        return True

    def destroy(self) -> None:
        if self.process is not None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait()
            self.process = None
        shutil.rmtree(self.root, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--workers", default="1,2,4", help="worker processes on core")
    parser.add_argument("--hosts", default="1,2,3", help="worker hosts, one process each")
    parser.add_argument("--epochs", default="5,200", help="job sizes, one row set each")
    parser.add_argument("--jobs", type=int, default=200, help="jobs per run")
    parser.add_argument("--noop", type=int, default=2000, help="no-op tasks per run")
    parser.add_argument("--brokers", default="redis", help="redis, rabbitmq or both")
    args = parser.parse_args()
    workers = [int(n) for n in args.workers.split(",") if n]
    hosts = [int(n) for n in args.hosts.split(",") if n]
    epochs = [int(n) for n in args.epochs.split(",")]
    brokers = args.brokers.split(",")

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
        teardown.callback(network.destroy)  # also kills whatever still runs on the hosts
        core = network.add_host("core")
        postgres = ThrowawayPostgres(host=core.address, launcher=core.launcher)
        teardown.callback(postgres.destroy)
        postgres.start()
        redis = ThrowawayRedis(host=core.address, launcher=core.launcher)
        teardown.callback(redis.destroy)
        redis.start()
        urls = {"redis": redis.url(0)}
        if "rabbitmq" in brokers:
            rabbit = ThrowawayRabbitMQ(core)
            teardown.callback(rabbit.destroy)
            rabbit.start()
            urls["rabbitmq"] = rabbit.url()
        worker_hosts = [network.add_host(f"host{n}") for n in range(1, max(hosts, default=0) + 1)]
        os.environ[COUNTER_ENV] = redis.url(1)  # the no-op tasks count in Redis on any broker
        print(
            f"core {core.address}: PostgreSQL :{postgres.port}, Redis :{redis.port}; "
            f"worker hosts: {', '.join(h.address for h in worker_hosts) or '-'}",
            flush=True,
        )
        placements = [Placement("core", [_on(core, scratch)] * n) for n in workers] + [
            Placement(str(n), [_on(host, scratch) for host in worker_hosts[:n]]) for n in hosts
        ]
        for name in brokers:
            broker = urls[name]
            url = postgres.create_database(f"deltaflow_bench_{name}")
            for placement in placements:
                work = scratch / f"{name}-{placement.hosts}-{placement.workers}"
                raw = measure_noop(broker, work, placement.workers, args.noop, placement.launchers)
                for size in epochs:
                    e2e, post = measure_service(
                        url, broker, work, placement.workers, args.jobs, size, placement.launchers
                    )
                    rows.append(Row(name, placement, size, e2e, post, raw))
                    print(
                        f"broker={name} hosts={placement.hosts} workers={placement.workers} "
                        f"epochs={size} deltaflow={e2e:.1f} jobs/s (POST {post:.2f} s) "
                        f"raw={raw:.1f} tasks/s",
                        flush=True,
                    )
    after = os.getloadavg()
    print()
    print("jobs: xor 64 samples, 2-4-2 tanh/softmax, adam (benchmarks/throughput.py's);")
    print(f"{args.jobs} jobs and {args.noop} no-op tasks per run; 1 process per worker;")
    print("hosts 'core': the worker processes run beside PostgreSQL and the broker")
    print(f"load average before: {_load(before)}; after: {_load(after)}")
    for name in brokers:
        for size in epochs:
            print()
            print(f"broker: {name}, {size} epochs per job")
            print()
            print("| hosts | workers | deltaflow jobs/s | efficiency | raw Celery no-op tasks/s |")
            print("|---|---:|---:|---:|---:|")
            for row in rows:
                if row.broker == name and row.epochs == size:
                    print(
                        f"| {row.placement.hosts} | {row.placement.workers} "
                        f"| {row.jobs_per_second:.1f} | {_efficiency(row, rows):.2f} "
                        f"| {row.noop_per_second:.1f} |"
                    )


def _efficiency(row: Row, rows: list[Row]) -> float:
    """jobs/s(N) / (N × jobs/s(1)) against the one-worker row of the same placement kind."""
    one_machine = row.placement.hosts == "core"
    single = next(
        (
            other
            for other in rows
            if other.broker == row.broker
            and other.epochs == row.epochs
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
