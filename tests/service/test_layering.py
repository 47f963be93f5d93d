"""The kernel stays importable without Flask, Celery or the worker (the worker imports it)."""

from __future__ import annotations

import json
import subprocess
import sys

KERNEL = [
    "service.config",
    "service.db",
    "service.models",
    "service.schemas",
    "service.problems",
    "service.datasets",
    "service.generators",
    "service.tenants",
    "service.jobs",
]
FORBIDDEN = ("flask", "flask_openapi3", "celery", "kombu", "worker")


def test_kernel_modules_import_neither_flask_celery_nor_worker():
    code = (
        "import importlib, json, sys\n"
        f"for name in {KERNEL!r}: importlib.import_module(name)\n"
        "print(json.dumps(sorted({m.split('.')[0] for m in sys.modules})))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    loaded = set(json.loads(out.stdout))
    assert not loaded & set(FORBIDDEN), loaded & set(FORBIDDEN)
