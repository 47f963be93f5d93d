"""The request deadline (DELTAFLOW_REQUEST_TIMEOUT_SECONDS, issue 11): how promptly a request
past it answers 503, and how long the largest CSV upload parses (what the default must exceed).

    nice -n 10 .venv/bin/python benchmarks/deadline.py [--deadlines 1,5]

In-process (Flask's test client, a fresh migrated SQLite file). For each deadline it sends
a gradient check of 7.9e10 multiply-adds (its budgets raised so that the deadline, not a
413, stops it) and a 200,000-row x 40-feature CSV upload, and prints each status and
wall time; then it times parsing a 2e6-value CSV and scales that to the 4e7-value limit.
Not a timed test: nothing here asserts.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from service.app import create_app  # noqa: E402
from service.config import Limits, Settings  # noqa: E402
from service.dataset_files import parse_csv  # noqa: E402
from service.db import make_engine, make_sessionmaker, transaction  # noqa: E402
from service.migrate import upgrade  # noqa: E402
from service.tenants import create_tenant_key  # noqa: E402
from tests.support.hostile import SLOW_LIMITS, slow_csv, slow_gradient_check  # noqa: E402


def multipart(csv: bytes, boundary: str = "deadline") -> bytes:
    head = (
        f'--{boundary}\r\nContent-Disposition: form-data; name="task"\r\n\r\nclassification\r\n'
        f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="s.csv"\r\n'
        "Content-Type: text/csv\r\n\r\n"
    )
    return head.encode() + csv + f"\r\n--{boundary}--\r\n".encode()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--deadlines", default="1,5", help="seconds, comma-separated")
    args = parser.parse_args()
    folder = tempfile.mkdtemp(prefix="deltaflow-deadline-")
    url = f"sqlite:///{folder}/deadline.sqlite3"
    upgrade(url)
    engine = make_engine(url)
    with transaction(make_sessionmaker(engine)) as session:
        auth = {"Authorization": f"Bearer {create_tenant_key(session, 'bench')}"}
    engine.dispose()
    upload = multipart(slow_csv(200_000, 40))
    for seconds in (float(s) for s in args.deadlines.split(",")):
        base = Settings.from_env(
            env={}, data_dir=folder, database_url=url, request_timeout_seconds=seconds
        )
        limits = dataclasses.replace(base.limits, **SLOW_LIMITS)
        app = create_app({"settings": dataclasses.replace(base, limits=limits)})
        client = app.test_client()
        started = time.perf_counter()
        check = client.post(
            "/api/v1/backprop/gradient-check", json=slow_gradient_check(), headers=auth
        )
        check_seconds = time.perf_counter() - started
        started = time.perf_counter()
        stored = client.post(
            "/api/v1/datasets",
            data=upload,
            headers=auth,
            content_type="multipart/form-data; boundary=deadline",
        )
        upload_seconds = time.perf_counter() - started
        print(
            f"deadline {seconds:g} s: gradient check (7.9e10 multiply-adds) {check.status_code} "
            f"after {check_seconds:.2f} s; CSV upload ({len(upload) / 1e6:.0f} MB, 200000 x 40) "
            f"{stored.status_code} after {upload_seconds:.2f} s"
        )
        app.extensions["deltaflow"].engine.dispose()
    rows, features = 100_000, 20
    data = slow_csv(rows, features)
    started = time.perf_counter()
    parse_csv(data, "classification", Limits())
    took = time.perf_counter() - started
    values, limit = rows * features, Limits().dataset_values
    print(
        f"CSV parse: {values:.0e} values ({len(data) / 1e6:.0f} MB) in {took:.2f} s; the "
        f"{limit:.0e}-value limit scales to ~{took * limit / values:.0f} s"
    )


if __name__ == "__main__":
    main()
