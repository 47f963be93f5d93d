"""The kernel stays importable without Flask, Celery or the worker (the worker imports it)."""

from __future__ import annotations

import json
import subprocess
import sys

KERNEL = [
    "service.config",
    "service.db",
    "service.models",
    "service.schemas.names",
    "service.schemas.spec",
    "service.schemas.records",
    "service.schemas.batch",
    "service.schemas.backprop",
    "service.schemas.responses.wire",
    "service.schemas.responses.datasets",
    "service.schemas.responses.jobs",
    "service.schemas.responses.curves",
    "service.schemas.responses.trained",
    "service.schemas.responses.batches",
    "service.schemas.responses.compare",
    "service.schemas.responses.meta",
    "service.schemas.responses.health",
    "service.schemas.responses.quota",
    "service.problems",
    "service.timeutil",
    "service.tenants",
    "service.keycache",
    "service.jobs",
    "service.validation",
    "service.job_writes",
    "service.job_claim",
    "service.job_progress",
    "service.job_finish",
    "service.job_decisions",
    "service.job_transitions",
    "service.recovery",
    "service.dispatch",
    "service.idempotency",
    "service.curves",
    "service.cursors",
    "service.datasets",
    "service.dataset_arrays",
    "service.dataset_files",
    "service.generators",
    "service.sweeps",
    "service.batches",
    "service.summaries",
    "service.schedulers",
    "service.plans",
    "service.searches",
    "service.tpe",
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
