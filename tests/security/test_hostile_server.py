"""The hostile tenant against a real ``deltaflow api`` (issue 11), on both backends.

Each finding's request goes over HTTP to the production server model (gunicorn +
waitress, ``service.serving``); each must be answered 4xx problem+json, and afterwards
``/healthz`` and an authenticated read still answer. The API processes' peak resident
memory (VmHWM of the gunicorn master and its workers) is printed and must stay under
500 MB — before the fixes, the first request alone took 1.4 GB.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest
import requests

from service.db import transaction
from service.tenants import create_tenant_key
from tests.support.apiserver import ApiServer
from tests.support.hostile import npy, npy_header, zipped

pytestmark = [pytest.mark.integration, pytest.mark.slow]

MB = 1024 * 1024
PEAK_TARGET = 500 * MB


def hostile_requests(job_id: str) -> list[tuple[str, str, str, dict]]:
    """(name, method, path, requests kwargs) — the findings of issue 11."""
    label = {"name": "x", "X": [[float(i)] for i in range(5000)], "y": ["a"] * 4999 + ["b" * 25000]}
    csv = ("x,target\n" + "1,a\n" * 10_000 + "2," + "b" * 25_000 + "\n").encode()
    bomb = zipped(
        {"X.npy": npy(np.zeros((2, 1))), "y.npy": (npy_header((62_500_000,), "<i2"), 125_000_000)}
    )
    liar = zipped({"X.npy": npy_header((100_000, 100_000, 10)), "y.npy": npy(np.zeros(2))})
    net = {"output": {"activation": "softmax"}, "loss": "cross_entropy"}
    layers = {"network": {**net, "layers": [{"units": 1}] * 2000}, "X": [[0.0], [1.0]], "y": [0, 1]}
    wide = b"x,target\n1," + b"b" * 140_000
    nul = '{"name": "a\\u0000"}'
    plain = {"Content-Type": "text/plain"}
    deep = '{"name": ' + "[" * 5000 + "]" * 5000 + "}"
    json_headers = {"Content-Type": "application/json"}
    return [
        ("25000-char label", "POST", "/datasets", {"json": label}),
        ("CSV long label", "POST", "/datasets", {"files": {"file": ("w.csv", csv)}}),
        ("CSV field > 131072", "POST", "/datasets", {"files": {"file": ("f.csv", wide)}}),
        ("NPZ deflated y 62.5M", "POST", "/datasets", {"files": {"file": ("b.npz", bomb)}}),
        ("NPZ 3-D header 100 GB", "POST", "/datasets", {"files": {"file": ("l.npz", liar)}}),
        ("gradient-check 2000 layers", "POST", "/backprop/gradient-check", {"json": layers}),
        ("JSON nested 5000", "POST", "/jobs", {"data": deep, "headers": json_headers}),
        ("since=2^40", "GET", f"/jobs/{job_id}/curve?since={2**40}", {}),
        ("since=2^70", "GET", f"/jobs/{job_id}/curve?since={2**70}", {}),
        ("NUL in an id", "GET", "/jobs/a%00b", {}),
        ("NUL in a name", "POST", "/jobs", {"data": nul, "headers": json_headers}),
        ("cursor year 1", "GET", "/jobs?cursor=WyIwMDAxLTAxLTAxVDAwOjAwOjAwKzA1OjAwIiwieCJd", {}),
        ("text/plain body", "POST", "/jobs", {"data": "{}", "headers": plain}),
    ]  # fmt: skip


def peak_rss(pid: int) -> dict[int, int]:
    """VmHWM in bytes of ``pid`` and its children (gunicorn's workers)."""
    pids = [pid]
    children = Path(f"/proc/{pid}/task/{pid}/children")
    if children.exists():
        pids += [int(p) for p in children.read_text().split()]
    peaks = {}
    for p in pids:
        for line in Path(f"/proc/{p}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                peaks[p] = int(line.split()[1]) * 1024
    return peaks


@pytest.fixture(scope="module")
def served(backend, tmp_path_factory):
    with transaction(backend.factory) as session:
        key = create_tenant_key(session, "hostile")
    server = ApiServer(backend.env(), tmp_path_factory.mktemp("api") / "api.log").start()
    yield server, {"Authorization": f"Bearer {key}"}
    server.stop()


def test_hostile_requests_get_4xx_and_the_api_stays_small(backend, served, capsys):
    server, auth = served
    api = f"{server.url}/api/v1"
    net = {"layers": [{"units": 2}], "output": {"activation": "softmax"}, "loss": "cross_entropy"}
    spec = {"network": net, "dataset": {"generator": "xor", "n_samples": 20}, "training": {}}
    job_id = requests.post(f"{api}/jobs", json=spec, headers=auth, timeout=30).json()["id"]
    lines = [f"{backend.kind}: hostile requests against deltaflow api"]
    for name, method, path, kwargs in hostile_requests(job_id):
        headers = {**auth, **kwargs.pop("headers", {})}
        response = requests.request(method, api + path, headers=headers, timeout=60, **kwargs)
        assert 400 <= response.status_code < 500, (name, response.status_code, response.text[:300])
        assert response.headers["Content-Type"].startswith("application/problem+json"), name
        problem = response.json()
        lines.append(f"  {response.status_code} {name}: {problem['detail'][:90]}")
        assert requests.get(f"{server.url}/healthz", timeout=10).status_code == 200, name
    assert requests.get(f"{api}/jobs/{job_id}", headers=auth, timeout=10).status_code == 200
    listed = requests.get(f"{api}/jobs", headers=auth, timeout=10).json()["items"]
    assert [item["id"] for item in listed] == [job_id]  # nothing else was stored
    assert requests.get(f"{api}/datasets", headers=auth, timeout=10).json()["items"] == []

    peaks = peak_rss(server.process.pid)
    lines.append(
        "  API processes' peak memory (VmHWM): "
        + ", ".join(f"pid {pid} {peak / MB:.0f} MB" for pid, peak in sorted(peaks.items()))
    )
    with capsys.disabled():
        sys.stdout.write("\n" + "\n".join(lines) + "\n")
    assert max(peaks.values()) < PEAK_TARGET, json.dumps(peaks)
