"""Client tests: the real API served over HTTP on a free port, a real Celery worker."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

# Make the repository root importable for ``tests.support`` (see tests/e2e/conftest.py).
_ROOT = str(Path(__file__).resolve().parents[2])
if _ROOT not in sys.path:
    sys.path.insert(0, _ROOT)

from tests.support.fixtures import *  # noqa: E402,F403
from tests.support.fixtures import Backend  # noqa: E402
from tests.support.live import LiveServer  # noqa: E402
from tests.support.workers import WorkerProcess  # noqa: E402

# Small pages, so a handful of jobs and a 30-epoch curve already span several of them.
PAGE_SIZE = 2
CURVE_PAGE = 7


@dataclass
class Service:
    url: str
    key: str
    backend: Backend
    page_size: int = PAGE_SIZE
    curve_page: int = CURVE_PAGE


@pytest.fixture(scope="module")
def service(production_backend: Backend) -> Iterator[Service]:  # noqa: F405
    """The API (PostgreSQL + Redis) at a real URL, one tenant's key, one worker."""
    from service.api.plumbing import EXTENSION
    from service.app import create_app
    from service.db import transaction
    from service.tenants import create_tenant_key

    settings = production_backend.settings(max_page_size=PAGE_SIZE, max_curve_points=CURVE_PAGE)
    app = create_app({"settings": settings})
    with transaction(production_backend.factory) as session:
        key = create_tenant_key(session, "client-tests")
    worker = WorkerProcess(production_backend.env(), production_backend.log_dir).start()
    server = LiveServer(app).start()
    try:
        yield Service(server.url, key, production_backend)
    finally:
        worker.signal_stop()
        server.stop()
        worker.stop(timeout=10)
        app.extensions[EXTENSION].engine.dispose()
