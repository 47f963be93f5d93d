"""GET /datasets/{id}/points in process (Flask test client, a throwaway SQLite database):
median of 5 answers, the body size, and a conditional GET answered 304, for a 100000 x 2 and a
20000 x 784 float32 dataset (10 classes). Run: ``.venv/bin/python benchmarks/dataset_points.py``.
"""

import io
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np

from service.app import create_app
from service.config import Settings
from service.db import make_engine, make_sessionmaker, transaction
from service.migrate import upgrade
from service.tenants import create_tenant_key


def main(tmp: Path) -> None:
    url = f"sqlite:///{tmp / 'db.sqlite3'}"
    upgrade(url)
    with transaction(make_sessionmaker(make_engine(url))) as s:
        key = create_tenant_key(s, "acme")
    app = create_app({"settings": Settings.from_env(env={}, data_dir=tmp, database_url=url)})
    c, auth = app.test_client(), {"Authorization": f"Bearer {key}"}
    rng = np.random.default_rng(0)
    for n, d in ((100_000, 2), (20_000, 784)):
        buf = io.BytesIO()
        np.savez(buf, X=rng.normal(size=(n, d)).astype(np.float32), y=rng.integers(0, 10, n))
        r = c.post(
            "/api/v1/datasets",
            data={"file": (io.BytesIO(buf.getvalue()), "d.npz"), "name": "d"},
            headers=auth,
            content_type="multipart/form-data",
        )
        ds = r.get_json()["id"]
        for q in ("max_points=2000&columns=0,1", ""):
            times = []
            for _ in range(5):
                t = time.perf_counter()
                r = c.get(
                    f"/api/v1/datasets/{ds}/points?{q}",
                    headers={**auth, "Accept-Encoding": "identity"},
                )
                times.append(time.perf_counter() - t)
            body = r.get_json()
            etag = r.headers["ETag"]
            t = time.perf_counter()
            r304 = c.get(
                f"/api/v1/datasets/{ds}/points?{q}", headers={**auth, "If-None-Match": etag}
            )
            t304 = time.perf_counter() - t
            print(
                f"{n}x{d} ?{q or '(defaults)'}: rows {len(body['X'])} cols {len(body['columns'])} "
                f"{len(r.data) / 1e3:.0f} kB, median {statistics.median(times) * 1e3:.0f} ms; "
                f"304 {r304.status_code} {t304 * 1e3:.1f} ms"
            )


if __name__ == "__main__":
    with tempfile.TemporaryDirectory() as folder:
        main(Path(folder))
