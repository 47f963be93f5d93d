"""Slow clients against a server model: do ``/healthz`` and an authenticated read still answer?

    .venv/bin/python benchmarks/slow_clients.py [--clients 10] [--body-bytes 20]
        [--interval 1.0] [--server deltaflow|gunicorn] [--worker-class gthread --threads 8]

Starts Deltaflow on PostgreSQL and Redis (``benchmarks.stack``), submits one job, then
opens ``--clients`` connections that each send the headers of a ``POST /api/v1/jobs``
at once and then its body one byte every ``--interval`` seconds (the attack of issue
11). While they trickle, a probe asks ``GET /healthz`` and ``GET /api/v1/jobs/{id}`` on
fresh connections, one after the other, and prints every latency; a probe that gets no
answer within ``--probe-timeout`` counts as starved. Afterwards it reports what the
tricklers themselves got back once their bodies were complete (or when the server gave up
on them).
"""

from __future__ import annotations

import argparse
import sys
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from benchmarks.stack import API_PREFIX, Client, Stack, load_average  # noqa: E402
from tests.support.trickle import Trickler, probe  # noqa: E402

JOB = {
    "network": {
        "layers": [{"units": 4, "activation": "tanh"}],
        "output": {"activation": "softmax"},
        "loss": "cross_entropy",
    },
    "dataset": {"generator": "xor", "n_samples": 64},
    "training": {"optimizer": {"name": "adam", "learning_rate": 0.01}, "epochs": 5},
}


@dataclass
class Probes:
    healthz: list[float | None] = field(default_factory=list)
    job: list[float | None] = field(default_factory=list)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--clients", type=int, default=10)
    parser.add_argument("--body-bytes", type=int, default=20)
    parser.add_argument("--interval", type=float, default=1.0, help="seconds between bytes")
    parser.add_argument("--probe-timeout", type=float, default=5.0)
    parser.add_argument("--workers", type=int, default=None)
    parser.add_argument("--worker-class", default=None)
    parser.add_argument("--threads", type=int, default=None)
    args = parser.parse_args()

    with Stack() as stack:
        base = stack.start_api(args.workers, args.worker_class, args.threads)
        key = stack.create_key("slow-clients")
        client = Client(base, key)
        job_id = client.expect("POST", f"{API_PREFIX}/jobs", 202, JOB).json()["id"]
        host, port = client.host, client.port
        auth = {"Authorization": f"Bearer {key}"}
        print(f"server: {describe(args)}; load {load_average()}", flush=True)
        trickle = [
            Trickler(host, port, f"{API_PREFIX}/jobs", auth, args.body_bytes, args.interval)
            for _ in range(args.clients)
        ]
        for t in trickle:
            t.start()
        time.sleep(min(2.0, args.interval * 2))  # every trickler has its headers in
        probes = Probes()
        while any(t.sending for t in trickle):
            probes.healthz.append(probe(host, port, "/healthz", {}, args.probe_timeout))
            probes.job.append(
                probe(host, port, f"{API_PREFIX}/jobs/{job_id}", auth, args.probe_timeout)
            )
            time.sleep(0.2)
        for t in trickle:
            t.join(timeout=args.probe_timeout + 5)
        report(args, probes, trickle)
        print(f"load at end {load_average()}")


def describe(args: argparse.Namespace) -> str:
    if args.worker_class is None and args.threads is None:
        return "`deltaflow api` as shipped"
    return f"gunicorn -k {args.worker_class or 'sync'} --threads {args.threads or 1}"


def report(args: argparse.Namespace, probes: Probes, trickle: list[Trickler]) -> None:
    print(
        f"{args.clients} clients trickling {args.body_bytes}-byte bodies, "
        f"one byte every {args.interval:g} s:"
    )
    for name, times in (("healthz", probes.healthz), ("job", probes.job)):
        answered = sorted(t for t in times if t is not None)
        starved = len(times) - len(answered)
        shown = " ".join(f"{t * 1000:.0f}" for t in times if t is not None)
        median = answered[len(answered) // 2] * 1000 if answered else float("nan")
        print(
            f"  {name}: {len(answered)} answered, {starved} starved (>{args.probe_timeout:g} s); "
            f"median {median:.1f} ms; all ms: {shown}"
        )
    statuses = Counter(str(t.status) for t in trickle)
    print("  tricklers' answers: " + ", ".join(f"{n}x {s}" for s, n in sorted(statuses.items())))


if __name__ == "__main__":
    main()
