"""Fair sharing between tenants: how long one tenant's job waits behind another's backlog.

    .venv/bin/python benchmarks/fairness.py [--jobs 40] [--epochs 1500] [--workers 1]
        [--concurrency 1] [--b-submit single|batch] [--throughput]

Starts Deltaflow on PostgreSQL and Redis (a fresh database and a claimed Redis database
number, removed afterwards) with the API under gunicorn (``deltaflow api``) and
``--workers`` real Celery workers of ``--concurrency`` pool children each (``deltaflow
worker``): ``workers x concurrency`` slots. Each slot first runs one warm-up job. Then,
all over HTTP:

1. tenant B submits ``--jobs`` small jobs (a few hundred ms of training each), as single
   jobs (``POST /jobs``, default) or as one batch (``--b-submit batch``);
2. right after, tenant A submits one job of the same kind;
3. when everything has finished, the jobs' ``created_at``/``started_at``/``finished_at``
   from the API say how many of B's jobs started after A's job was submitted but before it
   started (they *overtook* it; the target is at most the number of slots, FIFO gives
   about ``--jobs``), A's wait from submit to start, and B's throughput.

``--throughput`` then runs ``benchmarks/throughput.py`` with the same number of worker
processes, for the tiny-job rate the fair scheduler must not lower (or run it beside).
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time
from datetime import datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from benchmarks.stack import API_PREFIX, Client, Stack, load_average, parse_env  # noqa: E402

FINISHED = {"succeeded", "failed", "cancelled"}


def job_spec(epochs: int, name: str) -> dict[str, Any]:
    """Small but not instant: about 0.3 s of training at 1500 epochs (the median is printed)."""
    return {
        "name": name,
        "network": {
            "layers": [{"units": 16, "activation": "tanh"}],
            "output": {"activation": "softmax"},
            "loss": "cross_entropy",
        },
        "dataset": {"generator": "spirals", "n_samples": 300, "seed": 0},
        "training": {"optimizer": {"name": "adam", "learning_rate": 0.01}, "epochs": epochs},
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--jobs", type=int, default=40, help="tenant B's queued jobs")
    parser.add_argument("--epochs", type=int, default=1500, help="epochs of every job")
    parser.add_argument("--workers", type=int, default=1, help="worker processes")
    parser.add_argument("--concurrency", type=int, default=1, help="pool children per worker")
    parser.add_argument("--api-workers", type=int, default=None, help="gunicorn workers")
    parser.add_argument("--b-submit", choices=("single", "batch"), default="single")
    parser.add_argument("--env", action="append", default=[], help="NAME=VALUE for all processes")
    parser.add_argument("--timeout", type=float, default=900.0, help="give up after (s)")
    parser.add_argument(
        "--throughput", action="store_true", help="then run benchmarks/throughput.py"
    )
    args = parser.parse_args()

    slots = args.workers * args.concurrency
    load_at_start = load_average()
    with Stack(parse_env(args.env)) as stack:
        base = stack.start_api(args.api_workers)
        tenant_a = Client(base, stack.create_key("bench-tenant-a"))
        tenant_b = Client(base, stack.create_key("bench-tenant-b"))
        warm = Client(base, stack.create_key("bench-warm-up"))
        stack.start_workers(args.workers, args.concurrency)
        warm_ids = [submit(warm, job_spec(args.epochs, f"warm-up {i}")) for i in range(slots)]
        wait_finished(warm, warm_ids, args.timeout)
        print(f"{slots} slot(s) warm; load {load_average()}", flush=True)

        b_started = time.perf_counter()
        b_ids = submit_backlog(tenant_b, args)
        b_seconds = time.perf_counter() - b_started
        a_id = submit(tenant_a, job_spec(args.epochs, "tenant A"))
        print(f"B submitted {len(b_ids)} jobs in {b_seconds:.2f} s, then A one", flush=True)
        wait_finished(tenant_b, b_ids, args.timeout)
        wait_finished(tenant_a, [a_id], args.timeout)
        a_job = tenant_a.expect("GET", f"{API_PREFIX}/jobs/{a_id}", 200).json()
        b_jobs = [tenant_b.expect("GET", f"{API_PREFIX}/jobs/{i}", 200).json() for i in b_ids]
    report(args, slots, a_job, b_jobs, b_seconds, load_at_start)
    if args.throughput:
        run_throughput(args.workers)
    else:
        print()
        print("For the tiny-job throughput beside it (issue 12: must not drop beyond noise):")
        print(f"  .venv/bin/python benchmarks/throughput.py --workers {args.workers}")


THROTTLED: dict[str, int] = {"429": 0}


def post(client: Client, path: str, body: dict[str, Any], patience: float = 60.0) -> Any:
    """POST expecting 202; a 429 (a rate limit) is waited out as its Retry-After says."""
    deadline = time.monotonic() + patience
    while True:
        response = client.request("POST", f"{API_PREFIX}{path}", body)
        if response.status == 202:
            return response.json()
        if response.status != 429 or time.monotonic() > deadline:
            raise SystemExit(f"POST {path}: {response.status} {response.body[:300]!r}")
        THROTTLED["429"] += 1
        time.sleep(float(response.headers.get("retry-after", "1")))


def submit(client: Client, spec: dict[str, Any]) -> str:
    return str(post(client, "/jobs", spec)["id"])


def submit_backlog(client: Client, args: argparse.Namespace) -> list[str]:
    specs = [job_spec(args.epochs, f"tenant B {i}") for i in range(args.jobs)]
    if args.b_submit == "batch":
        return list(
            post(client, "/batches", {"name": "tenant B backlog", "jobs": specs})["job_ids"]
        )
    return [submit(client, spec) for spec in specs]


def wait_finished(client: Client, ids: list[str], timeout: float) -> None:
    """Poll each unfinished job until all have ended; a failed job stops the benchmark."""
    deadline = time.monotonic() + timeout
    pending = list(ids)
    while pending:
        job = client.expect("GET", f"{API_PREFIX}/jobs/{pending[0]}", 200).json()
        if job["status"] in FINISHED:
            if job["status"] != "succeeded":
                raise SystemExit(f"job {job['id']} {job['status']}: {job.get('error')}")
            pending.pop(0)
            continue
        if time.monotonic() > deadline:
            raise SystemExit(f"{len(pending)} job(s) still unfinished after {timeout:.0f} s")
        time.sleep(0.2)


def stamp(job: dict[str, Any], name: str) -> datetime:
    return datetime.fromisoformat(job[name])


def report(
    args: argparse.Namespace,
    slots: int,
    a_job: dict[str, Any],
    b_jobs: list[dict[str, Any]],
    b_seconds: float,
    load_at_start: str,
) -> None:
    a_created, a_started = stamp(a_job, "created_at"), stamp(a_job, "started_at")
    b_starts = [stamp(job, "started_at") for job in b_jobs]
    before = sum(start < a_started for start in b_starts)
    already = sum(start <= a_created for start in b_starts)
    overtook = before - already
    run_times = [
        (stamp(job, "finished_at") - stamp(job, "started_at")).total_seconds() for job in b_jobs
    ]
    b_span = (
        max(stamp(job, "finished_at") for job in b_jobs)
        - min(stamp(job, "created_at") for job in b_jobs)
    ).total_seconds()
    wait = (a_started - a_created).total_seconds()
    job_seconds = statistics.median(run_times)
    print()
    print(
        f"{args.jobs} jobs of tenant B ({args.b_submit}, submitted in {b_seconds:.2f} s), then 1 "
        f"of tenant A; {args.workers} worker(s) x concurrency {args.concurrency} = {slots} "
        f"slot(s); every job {args.epochs} epochs, median run {job_seconds * 1000:.0f} ms "
        "(started_at to finished_at)"
    )
    print()
    print("| B jobs | slots | B started before A | of them after A's submit (overtook) | target |"
          " FIFO | A's wait (s) | A's wait (job runs) | B throughput (jobs/s) |")  # fmt: skip
    print("|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    print(
        f"| {args.jobs} | {slots} | {before} | **{overtook}** | ≤ {slots} | "
        f"≈ {args.jobs - already} | {wait:.2f} | {wait / job_seconds:.1f} | "
        f"{args.jobs / b_span:.2f} |"
    )
    print()
    print(f"B jobs already started when A was submitted: {already}")
    if THROTTLED["429"]:
        print(f"submits answered 429 and retried after Retry-After: {THROTTLED['429']}")
    print(f"load average at start {load_at_start}, at end {load_average()}")


def run_throughput(workers: int) -> None:
    """benchmarks/throughput.py with as many worker processes, its table printed here."""
    command = [
        sys.executable,
        str(ROOT / "benchmarks" / "throughput.py"),
        "--workers",
        str(workers),
    ]
    print()
    print("$ " + " ".join(["benchmarks/throughput.py", "--workers", str(workers)]), flush=True)
    subprocess.run(command, cwd=ROOT, check=True)


if __name__ == "__main__":
    main()
