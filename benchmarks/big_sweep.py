"""What a 1,000-job sweep's batch page asks the server for, measured in process.

Seeds a finished random sweep (the browser test's seeding: tests/browser/seeding.py) into
a fresh SQLite database, then times each request the page makes through Flask's test
client, beside ``/healthz`` in the same run, and prints the bytes of each answer (as
sent to a browser: gzipped when 8 kB or more)::

    nice -n 10 .venv/bin/python benchmarks/big_sweep.py        # --jobs 1000 --repeat 20

No server, worker or browser: the numbers are the API's own cost.
"""

from __future__ import annotations

import argparse
import gzip
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from service.app import create_app  # noqa: E402
from service.config import Settings  # noqa: E402
from service.db import make_engine, make_sessionmaker, transaction  # noqa: E402
from service.migrate import upgrade  # noqa: E402
from service.tenants import create_tenant_key  # noqa: E402
from tests.browser.seeding import seed_sweep  # noqa: E402

TENANT = "bench"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=1000)
    parser.add_argument("--repeat", type=int, default=20)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        settings = Settings.from_env({"DELTAFLOW_DATA_DIR": folder})
        upgrade(settings.database_url)
        engine = make_engine(settings.database_url)
        with transaction(make_sessionmaker(engine)) as session:
            key = create_tenant_key(session, TENANT)
        engine.dispose()
        started = time.perf_counter()
        sweep = seed_sweep(Path(folder), TENANT, "bench", args.jobs, validation=True)
        took = time.perf_counter() - started
        print(f"seeded {args.jobs} jobs x {sweep.epochs} epochs in {took:.1f} s")
        client = create_app({"settings": settings}).test_client()
        auth = {"Authorization": f"Bearer {key}", "Accept-Encoding": "gzip"}
        batch = f"/api/v1/batches/{sweep.batch_id}"
        band = client.get(f"{batch}/band?k=10&points=100", headers=auth)
        best = json.loads(gzip.decompress(band.data) if _gzipped(band) else band.data)["top"][0]
        best = best["id"]
        requests = [
            ("/healthz", "/healthz"),
            ("summary", batch),
            ("band (k=10, 100 epochs)", f"{batch}/band?k=10&points=100"),
            ("band, If-None-Match -> 304", f"{batch}/band?k=10&points=100"),
            ("a best job's curve", f"/api/v1/jobs/{best}/curve?max_points=200&fields=val_loss"),
            ("nearest job to a point", f"{batch}/nearest?metric=val_loss&epoch=30&value=0.2"),
            ("every line (batch curves, 60/job)", f"{batch}/curves?max_points=60&fields=val_loss"),
        ]
        print(f"{'request':<40} {'status':>6} {'bytes':>9} {'p50 ms':>8} {'p90 ms':>8}")
        for label, url in requests:
            headers = dict(auth)
            if "304" in label:
                headers["If-None-Match"] = band.headers["ETag"]
            times = []
            for _ in range(args.repeat):
                t0 = time.perf_counter()
                answer = client.get(url, headers=headers)
                times.append((time.perf_counter() - t0) * 1000)
            times.sort()
            p90 = times[int(len(times) * 0.9) - 1]
            print(
                f"{label:<40} {answer.status_code:>6} {len(answer.data):>9} "
                f"{statistics.median(times):>8.2f} {p90:>8.2f}"
            )


def _gzipped(answer) -> bool:
    return answer.headers.get("Content-Encoding") == "gzip"


if __name__ == "__main__":
    main()
