"""What the hostile-tenant tests and ``benchmarks/hostile.py``/``deadline.py`` send:
hand-built NPZ archives (headers that lie, members that inflate), an inline-data job,
requests that run far past a deadline, and the problem+json check."""

from __future__ import annotations

import io
import zipfile
from typing import Any

import numpy as np

MB = 1024 * 1024


def npy(array: np.ndarray) -> bytes:
    """A real ``.npy`` member."""
    out = io.BytesIO()
    np.lib.format.write_array(out, array)
    return out.getvalue()


def npy_header(shape: tuple[int, ...], descr: str = "<f8") -> bytes:
    """A ``.npy`` header alone, claiming ``shape`` (the data may never follow)."""
    out = io.BytesIO()
    header = {"descr": descr, "fortran_order": False, "shape": shape}
    np.lib.format.write_array_header_1_0(out, header)
    return out.getvalue()


def zipped(
    members: dict[str, bytes | tuple[bytes, int]], method: int = zipfile.ZIP_DEFLATED
) -> bytes:
    """A zip of raw members; a tuple (header, n) appends n zero bytes, written in chunks."""
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", compression=method) as archive:
        for name, content in members.items():
            with archive.open(name, "w", force_zip64=True) as fh:
                if isinstance(content, tuple):
                    header, zeros = content
                    fh.write(header)
                    chunk = bytes(MB)
                    for start in range(0, zeros, MB):
                        fh.write(chunk[: min(MB, zeros - start)])
                else:
                    fh.write(content)
    return out.getvalue()


def inline_spec(n: int, d: int) -> dict[str, Any]:
    """A one-epoch job over n x d inline random data, two alternating classes."""
    rng = np.random.default_rng(0)
    return {
        "network": {
            "layers": [{"units": 4, "activation": "tanh"}],
            "output": {"activation": "softmax"},
            "loss": "cross_entropy",
        },
        "dataset": {"X": rng.normal(size=(n, d)).round(4).tolist(), "y": [i % 2 for i in range(n)]},
        "training": {"epochs": 1, "batch_size": 32},
    }


def assert_problem(response: Any, status: int, loc: list | None = None) -> dict:
    """A Flask test response is problem+json with ``status`` (and the first error at ``loc``)."""
    assert response.status_code == status, response.get_data(as_text=True)[:500]
    assert response.mimetype == "application/problem+json"
    body = response.get_json()
    if loc is not None:
        assert body["errors"][0]["loc"] == loc, body
    return body


# --- requests many times longer than a test's deadline ------------------------------------

# The gradient check's budgets, raised so that the deadline, not a 413, stops it.
SLOW_LIMITS = {"gradcheck_parameters": 20_000, "gradcheck_work": 10**11}


def slow_gradient_check() -> dict[str, Any]:
    """12,402 parameters over 256 examples: 2 x P x m x (P + layers) = 7.9e10 multiply-adds
    (74 s at load average 8 here)."""
    width, n_in, m = 100, 20, 256
    return {
        "network": {
            "layers": [{"units": width, "activation": "tanh"}] * 2,
            "output": {"activation": "softmax"},
            "loss": "cross_entropy",
        },
        "X": [[(i * 7 + j) % 11 / 10 for j in range(n_in)] for i in range(m)],
        "y": [i % 2 for i in range(m)],
    }


def slow_csv(rows: int = 200_000, features: int = 40) -> bytes:
    """A two-class CSV; at the 200,000-row limit, ~6 s to parse here."""
    header = ",".join(f"x{i}" for i in range(features)) + ",target\n"
    row = ",".join(f"{(i % 9) / 8:.4f}" for i in range(features))
    return (header + (row + ",a\n") * (rows // 2) + (row + ",b\n") * (rows - rows // 2)).encode()
