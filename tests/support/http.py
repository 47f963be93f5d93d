"""The real HTTP API for end-to-end tests: ``create_app`` with the backend's settings.

Requests go through the Flask test client in the test process, so every request runs
the production code path (validation, auth, commit, send to the broker) without a port.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest

from service.api.plumbing import EXTENSION
from service.app import create_app
from service.db import transaction
from service.tenants import create_tenant_key

from .fixtures import Backend


@dataclass
class Api:
    client: Any
    key: str

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.key}"}

    def get(self, path: str, **kwargs: Any) -> Any:
        return self.client.get(f"/api/v1{path}", headers=self.headers, **kwargs)

    def post(self, path: str, json: Any = None, **kwargs: Any) -> Any:
        return self.client.post(f"/api/v1{path}", json=json, headers=self.headers, **kwargs)

    def submit(self, spec: dict[str, Any], name: str = "e2e") -> str:
        response = self.post("/jobs", json={"name": name, **spec})
        assert response.status_code == 202, response.get_json()
        return response.get_json()["id"]

    def job(self, job_id: str) -> dict[str, Any]:
        response = self.get(f"/jobs/{job_id}")
        assert response.status_code == 200, response.get_json()
        return response.get_json()

    def wait(self, job_id: str, statuses: set[str], timeout: float = 90.0) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while True:
            job = self.job(job_id)
            if job["status"] in statuses:
                return job
            if time.monotonic() > deadline:
                raise AssertionError(f"job {job_id} still {job['status']} after {timeout}s")
            time.sleep(0.05)

    def curve(self, job_id: str) -> list[dict[str, Any]]:
        points: list[dict[str, Any]] = []
        since = 0
        while True:
            body = self.get(f"/jobs/{job_id}/curve", query_string={"since": since}).get_json()
            points.extend(body["points"])
            if body["complete"] or not body["points"]:
                return points
            since = body["next_since"]


@pytest.fixture(scope="module")
def api(backend: Backend) -> Iterator[Api]:
    app = create_app({"settings": backend.settings(), "TESTING": True})
    with transaction(backend.factory) as session:
        key = create_tenant_key(session, f"e2e-{backend.kind}")
    yield Api(app.test_client(), key)
    app.extensions[EXTENSION].engine.dispose()
