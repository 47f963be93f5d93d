"""The hostile tenant's requests of issue 11: status, time and peak memory of each.

    .venv/bin/python benchmarks/hostile.py [--only NAME,...] [--database-url URL]

Runs the app in-process (Flask's test client, a fresh migrated SQLite file unless
``--database-url`` names another database) and sends each finding's request once,
printing its status, wall time and the peak of Python/numpy allocations while it ran
(tracemalloc sees numpy's buffers). Before the fixes these were the 3 GB label upload,
the 1 GB NPZ, the 147 MB job list; the numbers printed now are what docs/security.md
and the issue's notes record. Not a timed test: nothing here asserts.
"""

from __future__ import annotations

import argparse
import io
import sys
import tempfile
import time
import tracemalloc
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402
from werkzeug.datastructures import FileStorage  # noqa: E402
from werkzeug.test import encode_multipart  # noqa: E402

from service.app import create_app  # noqa: E402
from service.config import Settings  # noqa: E402
from service.db import make_engine, make_sessionmaker, transaction  # noqa: E402
from service.migrate import upgrade  # noqa: E402
from service.tenants import create_tenant_key  # noqa: E402
from tests.support.hostile import inline_spec, npy, npy_header, zipped  # noqa: E402

API = "/api/v1"
MB = 1024 * 1024


def upload(client: Any, auth: dict[str, str], data: bytes, filename: str) -> Any:
    boundary, body = encode_multipart({"file": FileStorage(io.BytesIO(data), filename=filename)})
    return client.post(
        API + "/datasets",
        data=body,
        headers=auth,
        content_type=f"multipart/form-data; boundary={boundary}",
    )


def cases(client: Any, auth: dict[str, str]) -> dict[str, Callable[[], Any]]:
    long_label = {"name": "x", "X": [[float(i)] for i in range(5000)]}
    long_label["y"] = ["a"] * 4999 + ["b" * 25000]
    csv = ("x,target\n" + "1,a\n" * 10_000 + "2," + "b" * 25_000 + "\n").encode()
    bomb = zipped(
        {"X.npy": npy(np.zeros((2, 1))), "y.npy": (npy_header((62_500_000,), "<i2"), 125_000_000)}
    )
    header_3d = zipped({"X.npy": npy_header((100_000, 100_000, 10)), "y.npy": npy(np.zeros(2))})
    deep_layers = {
        "network": {
            "layers": [{"units": 1}] * 2000,
            "output": {"activation": "softmax"},
            "loss": "cross_entropy",
        },
        "X": [[0.0, 1.0], [1.0, 0.0]],
        "y": [0, 1],
    }

    def list_jobs() -> Any:
        return client.get(API + "/jobs?limit=5", headers=auth)

    return {
        "json 25000-char label": lambda: client.post(
            API + "/datasets", json=long_label, headers=auth
        ),
        "csv 25000-char label": lambda: upload(client, auth, csv, "wide.csv"),
        "npz deflated y 62.5M": lambda: upload(client, auth, bomb, "bomb.npz"),
        "npz 3-D X header 100 GB": lambda: upload(client, auth, header_3d, "liar.npz"),
        "gradient-check 2000 layers": lambda: client.post(
            API + "/backprop/gradient-check", json=deep_layers, headers=auth
        ),
        "GET /jobs with 5 inline jobs": list_jobs,
    }


def measure(call: Callable[[], Any]) -> tuple[int, float, int, int]:
    """Timed once as is, then once more under tracemalloc (which slows allocation) for
    the peak."""
    start = time.perf_counter()
    response = call()
    seconds = time.perf_counter() - start
    tracemalloc.start()
    try:
        call()
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    return response.status_code, seconds, peak, len(response.get_data())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--only", default="", help="comma list of case names (substrings)")
    parser.add_argument("--database-url", default="")
    parser.add_argument("--inline-rows", type=int, default=10_000)
    parser.add_argument("--inline-features", type=int, default=50)
    args = parser.parse_args()
    folder = Path(tempfile.mkdtemp(prefix="hostile-"))
    url = args.database_url or f"sqlite:///{folder / 'deltaflow.sqlite3'}"
    upgrade(url)
    with transaction(make_sessionmaker(make_engine(url))) as session:
        key = create_tenant_key(session, "hostile")
    auth = {"Authorization": f"Bearer {key}"}
    settings = Settings.from_env(env={}, data_dir=folder, database_url=url)
    client = create_app({"settings": settings}).test_client()
    wanted = [w for w in args.only.split(",") if w]
    todo = {
        name: call
        for name, call in cases(client, auth).items()
        if not wanted or any(w in name for w in wanted)
    }
    if any("inline" in name for name in todo):
        job = inline_spec(args.inline_rows, args.inline_features)
        for _ in range(5):
            response = client.post(API + "/jobs", json=job, headers=auth)
            assert response.status_code == 202, response.get_json()
    print(f"{'request':32} {'status':>6} {'seconds':>8} {'peak MB':>8} {'answer bytes':>12}")
    for name, call in todo.items():
        status, seconds, peak, size = measure(call)
        print(f"{name:32} {status:>6} {seconds:>8.3f} {peak / MB:>8.1f} {size:>12}")


if __name__ == "__main__":
    main()
