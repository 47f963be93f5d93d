"""What dashboard polling costs: conditional and empty polls against /healthz, long curves.

    .venv/bin/python benchmarks/polling.py [--connections 100,500] [--duration 10]
        [--workers N] [--worker-class gthread --threads 8] [--generator auto|wrk|asyncio]

Starts Deltaflow on PostgreSQL and Redis (a fresh database on 127.0.0.1:5432 and a claimed
Redis database number, both removed afterwards; throwaway servers when those do not
answer) with the API under gunicorn on a free port: ``deltaflow api`` as shipped, or
gunicorn with ``--worker-class``/``--threads`` to compare server models. It seeds, through
the public API, one job of 10,000 epochs recording gradient norms, a batch of 100 jobs of
1000 epochs, and one small finished job; their curves are written by
``seed_curves_through_the_kernel`` (training them for real would take hours).

Every request type is checked for its expected status first, then measured twice:

- **one connection**: sequential requests; p50/p99 latency and the body size;
- **under load**: wrk (``apt-get install wrk``) or, without it, an asyncio client, at each
  ``--connections`` count for ``--duration`` seconds; req/s, p50, p99, the ratio of req/s
  to ``GET /healthz`` at the same concurrency in the same run, and every answer that was
  not the expected status (5xx, 429, socket errors, timeouts).

It also follows the batch overview's cursor to say how many responses (and bytes) cover
the whole batch. The load generator runs on the same cores as the server: the ratios
are what to compare between runs, and the load average is printed at start and end.
"""

from __future__ import annotations

import argparse
import math
import random
import sys
import time
import urllib.parse
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from benchmarks import load  # noqa: E402
from benchmarks.stack import API_PREFIX, Client, Stack, load_average, parse_env  # noqa: E402

HIDDEN = [{"units": 32, "activation": "tanh"}, {"units": 32, "activation": "tanh"}]


def job_spec(epochs: int, grad_norms: bool = False, name: str | None = None) -> dict[str, Any]:
    spec: dict[str, Any] = {
        "network": {"layers": HIDDEN, "output": {"activation": "softmax"}, "loss": "cross_entropy"},
        "dataset": {"generator": "spirals", "n_samples": 300, "validation_split": 0.2, "seed": 0},
        "training": {
            "optimizer": {"name": "adam", "learning_rate": 0.01},
            "epochs": epochs,
            "record": {"grad_norms": grad_norms},
        },
    }
    if name:
        spec["name"] = name
    return spec


@dataclass
class Target:
    """One request type: what to send, the status it must answer, what it weighed."""

    name: str
    path: str
    status: int
    headers: dict[str, str] = field(default_factory=dict)
    body_bytes: int = 0
    note: str = ""


@dataclass
class Seeded:
    long_job: str
    long_epochs: int
    finished_job: str
    finished_epochs: int
    batch: str
    batch_jobs: int
    batch_epochs: int
    seconds: float


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--connections", default="100,500", help="concurrent connections")
    parser.add_argument("--duration", type=float, default=10.0, help="seconds per loaded row")
    parser.add_argument("--timeout", type=float, default=10.0, help="a request slower fails")
    parser.add_argument("--generator", choices=("auto", "wrk", "asyncio"), default="auto")
    parser.add_argument("--wrk-threads", type=int, default=2)
    parser.add_argument("--sequential", type=int, default=200, help="requests on one connection")
    parser.add_argument(
        "--sequential-seconds", type=float, default=10.0, help="time cap of one sequential row"
    )
    parser.add_argument("--workers", type=int, default=None, help="gunicorn worker processes")
    parser.add_argument("--worker-class", default=None, help="gunicorn worker class")
    parser.add_argument("--threads", type=int, default=None, help="gunicorn threads per worker")
    parser.add_argument("--app", default="service.app:create_app()", help="gunicorn app")
    parser.add_argument("--env", action="append", default=[], help="NAME=VALUE for the API")
    parser.add_argument("--long-epochs", type=int, default=10_000)
    parser.add_argument("--batch-jobs", type=int, default=100)
    parser.add_argument("--batch-epochs", type=int, default=1000)
    parser.add_argument("--overview-query", default="max_points=500", help="10,000-epoch job")
    parser.add_argument("--batch-query", default="max_points=200", help="batch overview")
    parser.add_argument("--max-pages", type=int, default=1000, help="pages followed, at most")
    parser.add_argument("--only", default="", help="comma list of request names to load")
    parser.add_argument(
        "--settle-seconds", type=float, default=300.0, help="wait for the server to drain"
    )
    args = parser.parse_args()

    generator = load.choose(args.generator)
    connections = [int(n) for n in args.connections.split(",") if n]
    load_at_start = load_average()
    started = time.time()
    with Stack(parse_env(args.env)) as stack:
        base = stack.start_api(args.workers, args.worker_class, args.threads, args.app)
        key = stack.create_key("bench-poller")
        client = Client(base, key)
        seeded = seed(client, stack.database_url, args)
        targets = build_targets(client, seeded, args)
        verify(client, targets)
        coverage = batch_coverage(client, seeded, args)
        single = {t.name: sequential(client, t, args) for t in targets}
        for name, (p50, p99, _) in single.items():  # printed now too: a long run may not end
            print(f"  one connection: {name}: p50 {p50:.2f} ms, p99 {p99:.2f} ms", flush=True)
        wanted = {n.strip() for n in args.only.split(",") if n.strip()}
        loaded: dict[int, dict[str, load.LoadResult]] = {}
        for count in connections:
            loaded[count] = {}
            for target in targets:
                if wanted and target.name not in wanted and target.name != "healthz":
                    continue
                loaded[count][target.name] = load.run(
                    generator,
                    base + target.path,
                    target.headers,
                    count,
                    args.duration,
                    args.timeout,
                    args.wrk_threads,
                )
                drained = settle(client, single["healthz"][0], args.settle_seconds)
                result = loaded[count][target.name]
                print(
                    f"  {target.name} at {count}: {result.rate:.0f} req/s, p50 "
                    f"{result.p50_ms:.1f} ms, p99 {result.p99_ms:.1f} ms; load {load_average()}; "
                    f"server idle again after {drained:.1f} s",
                    flush=True,
                )
        verify(client, targets, timeout=args.settle_seconds)  # unchanged under load
        timeouts = stack.api_log_count("WORKER TIMEOUT")
        server = describe_server(args, stack.api_processes())
    report(args, generator, server, seeded, targets, single, loaded, coverage)
    print()
    print(f"load average at start {load_at_start}, at end {load_average()}; ", end="")
    print(f"{time.time() - started:.0f} s in all; gunicorn worker timeouts: {timeouts}")


# --- seeding --------------------------------------------------------------------------------


def seed(client: Client, database_url: str, args: argparse.Namespace) -> Seeded:
    """Jobs through the public API (no worker runs, so they stay queued), then their curves."""
    started = time.perf_counter()
    jobs = f"{API_PREFIX}/jobs"
    long_job = client.expect(
        "POST", jobs, 202, job_spec(args.long_epochs, grad_norms=True, name="bench: long")
    ).json()["id"]
    finished_epochs = 300
    finished_job = client.expect(
        "POST", jobs, 202, job_spec(finished_epochs, name="bench: finished")
    ).json()["id"]
    batch = client.expect(
        "POST",
        f"{API_PREFIX}/batches",
        202,
        {"name": "bench: sweep", "jobs": [job_spec(args.batch_epochs)] * args.batch_jobs},
    ).json()
    plans = {long_job: args.long_epochs, finished_job: finished_epochs}
    plans.update(dict.fromkeys(batch["job_ids"], args.batch_epochs))
    seed_curves_through_the_kernel(database_url, plans, grad_norm_jobs={long_job})
    seconds = time.perf_counter() - started
    print(f"seeded {sum(plans.values())} curve points in {seconds:.1f} s", flush=True)
    return Seeded(
        long_job=long_job,
        long_epochs=args.long_epochs,
        finished_job=finished_job,
        finished_epochs=finished_epochs,
        batch=batch["id"],
        batch_jobs=args.batch_jobs,
        batch_epochs=args.batch_epochs,
        seconds=seconds,
    )


def seed_curves_through_the_kernel(
    database_url: str, plans: dict[str, int], grad_norm_jobs: set[str], flush_every: int = 100
) -> None:
    """Give each job ``plans[job_id]`` epochs of curve, written as a worker writes them.

    The only place where this benchmark uses the service's internals: the run-side kernel
    (``service.job_claim``, ``job_progress``, ``job_finish``) claims each queued job,
    flushes ``flush_every`` epochs per transaction as a run does once a second, and
    finishes it succeeded (with an empty model: nothing here reads it). Whatever the flush
    maintains besides the points (versions, metrics, any stored summaries) is therefore
    maintained here too. Update this function if the kernel's run-side signatures change.
    """
    from service import job_claim, job_finish, job_progress
    from service.db import make_engine, make_sessionmaker

    engine = make_engine(database_url)
    factory = make_sessionmaker(engine)
    rng = random.Random(0)
    layers = len(HIDDEN) + 1
    try:
        for job_id, epochs in plans.items():
            claim = job_claim.claim(
                factory, job_id, "bench-seed", lease_seconds=3600, max_attempts=3
            )
            if claim is None:
                raise RuntimeError(f"job {job_id} could not be claimed for seeding")
            layer_count = layers if job_id in grad_norm_jobs else 0
            for first in range(1, epochs + 1, flush_every):
                last = min(first + flush_every - 1, epochs)
                points = [
                    synthetic_point(e, epochs, rng, layer_count) for e in range(first, last + 1)
                ]
                pulse = job_progress.flush(
                    factory, job_id, claim.attempt, points, lease_seconds=3600
                )
                if not pulse.alive:
                    raise RuntimeError(f"job {job_id} lost its seeding claim")
            if not job_finish.finish_succeeded(
                factory, job_id, claim.attempt, weights=b"", meta={}
            ):
                raise RuntimeError(f"job {job_id} could not be finished")
    finally:
        engine.dispose()


def synthetic_point(epoch: int, epochs: int, rng: random.Random, layers: int) -> dict[str, Any]:
    """A plausible, noisy, decaying curve point (noise so min/max downsampling matters)."""
    t = epoch / epochs
    train = 1.1 * math.exp(-4 * t) + 0.02 + 0.03 * rng.random()
    val = train * (1.05 + 0.1 * rng.random())
    grad_norms = None
    if layers:
        grad_norms = {
            "D": [0.5 * math.exp(-3 * t) * (1 + rng.random()) for _ in range(layers)],
            "update_ratio": [1e-3 * (1 + rng.random()) for _ in range(layers)],
        }
    return {
        "epoch": epoch,
        "train_loss": train,
        "val_loss": val,
        "train_accuracy": min(1.0, 1.0 - train / 1.2),
        "val_accuracy": min(1.0, 1.0 - val / 1.2),
        "learning_rate": 0.01,
        "grad_norms": grad_norms,
        "seconds": 0.004 + 0.001 * rng.random(),
    }


# --- the request types ----------------------------------------------------------------------


def build_targets(client: Client, seeded: Seeded, args: argparse.Namespace) -> list[Target]:
    auth = {"Authorization": f"Bearer {client.key}"}
    job = f"{API_PREFIX}/jobs/{seeded.finished_job}"
    job_etag = client.expect("GET", job, 200).headers["etag"]
    empty = f"{job}/curve?since={seeded.finished_epochs}"
    first_empty = client.expect("GET", empty, 200)
    curve_etag = first_empty.headers.get("etag")
    targets = [
        Target("healthz", "/healthz", 200),
        Target("job 200", job, 200, auth, note="full representation, no ETag sent"),
        Target("job 304", job, 304, {**auth, "If-None-Match": job_etag}),
        Target("curve empty", empty, 200, auth, note=f"since={seeded.finished_epochs}, last epoch"),
    ]
    if curve_etag:
        targets.append(Target("curve empty 304", empty, 304, {**auth, "If-None-Match": curve_etag}))
    overview = f"{API_PREFIX}/jobs/{seeded.long_job}/curve?{args.overview_query}"
    targets.append(
        Target("long overview", overview, 200, auth, note=f"{seeded.long_epochs} epochs")
    )
    batch = f"{API_PREFIX}/batches/{seeded.batch}/curves?{args.batch_query}"
    what = f"{seeded.batch_jobs} jobs x {seeded.batch_epochs} epochs"
    targets.append(Target("batch overview", batch, 200, auth, note=f"{what}, first page"))
    targets.append(
        Target(
            "batch overview columns",
            f"{batch}&format=columns",
            200,
            auth,
            note=f"{what}, format=columns",
        )
    )
    return targets


def verify(client: Client, targets: list[Target], timeout: float = 60.0) -> None:
    """Each request answers its expected status (a benchmark of 401s is worthless)."""
    bare = Client(client_base(client), timeout=timeout)
    try:
        for target in targets:
            response = bare.get(target.path, headers=target.headers)
            if response.status != target.status:
                raise SystemExit(
                    f"{target.name}: GET {target.path} answered {response.status}, "
                    f"not {target.status}: {response.body[:300]!r}"
                )
            target.body_bytes = len(response.body)
    finally:
        bare.close()


def client_base(client: Client) -> str:
    return f"http://{client.host}:{client.port}"


def sequential(
    client: Client, target: Target, args: argparse.Namespace
) -> tuple[float, float, int]:
    """(p50 ms, p99 ms, requests) of back-to-back requests on one client connection."""
    bare = Client(client_base(client))
    times: list[float] = []
    deadline = time.perf_counter() + args.sequential_seconds
    try:
        for _ in range(3):  # warm the connection and the worker
            bare.get(target.path, headers=target.headers)
        while len(times) < args.sequential and (time.perf_counter() < deadline or len(times) < 10):
            start = time.perf_counter()
            response = bare.get(target.path, headers=target.headers)
            times.append(time.perf_counter() - start)
            if response.status != target.status:
                raise SystemExit(f"{target.name}: answered {response.status} on one connection")
    finally:
        bare.close()
    times.sort()
    return load.percentile(times, 50) * 1000, load.percentile(times, 99) * 1000, len(times)


def settle(client: Client, healthz_ms: float, max_wait: float = 120.0) -> float:
    """Seconds until ``/healthz`` answers near its idle latency three times running.

    Connections the generator left behind are still queued in the server when it stops
    (a sync worker serves them one by one); the next row must not pay for them.
    """
    bare = Client(client_base(client))
    started = time.perf_counter()
    fast = 0
    try:
        while fast < 3 and time.perf_counter() - started < max_wait:
            begin = time.perf_counter()
            try:
                bare.get("/healthz")
            except OSError:  # still busy with the queue the generator left: try again
                bare.close()
                bare = Client(client_base(client))
                continue
            elapsed_ms = (time.perf_counter() - begin) * 1000
            fast = fast + 1 if elapsed_ms < max(5 * healthz_ms, 10.0) else 0
            time.sleep(0.05)
    finally:
        bare.close()
    return time.perf_counter() - started


@dataclass
class Coverage:
    first_bytes: int
    points_per_job: tuple[int, int]
    pages: int
    total_bytes: int
    covered: bool
    seconds: float


def batch_coverage(client: Client, seeded: Seeded, args: argparse.Namespace) -> Coverage:
    """Follow the batch overview's ``next_cursor`` while it says ``truncated``: how many
    responses and bytes does drawing the whole batch take?"""
    path = f"{API_PREFIX}/batches/{seeded.batch}/curves?{args.batch_query}"
    pages, total, first_bytes = 0, 0, 0
    per_job: tuple[int, int] = (0, 0)
    cursor: str | None = None
    covered = False
    started = time.perf_counter()
    while pages < args.max_pages:
        page_path = path if cursor is None else f"{path}&cursor={urllib.parse.quote(cursor)}"
        response = client.expect("GET", page_path, 200)
        data = response.json()
        pages += 1
        total += len(response.body)
        if pages == 1:
            first_bytes = len(response.body)
            counts = [
                len(job.get("points") or job.get("columns", {}).get("epoch", []))
                for job in data["jobs"]
            ]
            per_job = (min(counts, default=0), max(counts, default=0))
        cursor = data.get("next_cursor")
        if not data.get("truncated") or not cursor:
            covered = True
            break
    return Coverage(first_bytes, per_job, pages, total, covered, time.perf_counter() - started)


# --- the report -------------------------------------------------------------------------------


def describe_server(args: argparse.Namespace, processes: int) -> str:
    if args.worker_class is None and args.threads is None:
        flag = "" if args.workers is None else f" --workers {args.workers}"
        return f"`deltaflow api{flag}` as shipped ({processes} gunicorn worker processes)"
    return (
        f"gunicorn --workers {args.workers or 2} --worker-class {args.worker_class or 'sync'}"
        f" --threads {args.threads or 1} ({processes} worker processes)"
    )


def report(
    args: argparse.Namespace,
    generator: str,
    server: str,
    seeded: Seeded,
    targets: list[Target],
    single: dict[str, tuple[float, float, int]],
    loaded: dict[int, dict[str, load.LoadResult]],
    coverage: Coverage,
) -> None:
    print()
    print(f"server: {server}, PostgreSQL + Redis; generator: {generator}", end="")
    print(f" ({args.wrk_threads} threads)" if generator == "wrk" else " (Python, same cores)")
    print(
        f"seeded: a {seeded.long_epochs}-epoch job with gradient norms, a {seeded.batch_jobs}"
        f"-job x {seeded.batch_epochs}-epoch batch, a finished {seeded.finished_epochs}-epoch"
        f" job ({seeded.seconds:.0f} s)"
    )
    print()
    print("One connection, sequential requests:")
    print()
    print("| request | path | status | body bytes | p50 ms | p99 ms | n |")
    print("|---|---|---:|---:|---:|---:|---:|")
    for target in targets:
        p50, p99, n = single[target.name]
        print(
            f"| {target.name} | `{shorten(target.path)}` | {target.status} | "
            f"{target.body_bytes} | {p50:.2f} | {p99:.2f} | {n} |"
        )
    for count, rows in loaded.items():
        print()
        print(f"{count} connections, {args.duration:g} s per row:")
        print()
        print(
            "| request | req/s | × /healthz | p50 ms | p99 ms | answers | not the expected answer |"
        )
        print("|---|---:|---:|---:|---:|---:|---|")
        health = rows.get("healthz")
        for target in targets:
            result = rows.get(target.name)
            if result is None:
                continue
            ratio = result.rate / health.rate if health and health.rate else math.nan
            print(
                f"| {target.name} | {result.rate:.0f} | {ratio:.2f} | {result.p50_ms:.1f} | "
                f"{result.p99_ms:.1f} | {result.requests} | "
                f"{result.describe_errors(target.status)} |"
            )
    print()
    print(
        "answers: responses within the row's duration (requests still waiting when it ended"
        " are not counted); before each row the server was let drain its queue."
    )
    print(
        f"batch overview (`{args.batch_query}`): {coverage.first_bytes} bytes in the first "
        f"response, {coverage.points_per_job[0]}–{coverage.points_per_job[1]} points per job "
        "in it; "
        + (
            f"the whole batch took {coverage.pages} responses, {coverage.total_bytes} bytes, "
            f"{coverage.seconds:.1f} s"
            if coverage.covered
            else f"not covered after {coverage.pages} responses ({coverage.total_bytes} bytes)"
        )
    )
    for target in targets:
        if target.note:
            print(f"  {target.name}: {target.note}")


def shorten(path: str) -> str:
    """Ids out of the path, so the table stays readable."""
    parts = [("{id}" if len(p) == 32 else p) for p in path.split("/")]
    shown = "/".join(parts)
    return shown.replace(API_PREFIX, "")


if __name__ == "__main__":
    main()
