"""The real API, in process: ``create_app`` on the scenario's settings, a tenant and its key."""

from __future__ import annotations

from typing import Any

from flask.testing import FlaskClient

from service.api.plumbing import EXTENSION
from service.app import create_app
from service.tenants import create_tenant_key as create_key

API = "/api/v1"


class Api:
    """Submit, read and cancel jobs over HTTP exactly as a client does."""

    def __init__(self, settings: Any, factory: Any, tenant: str = "faults") -> None:
        self.app = create_app({"settings": settings, "TESTING": True})
        with factory.begin() as session:
            self.key = create_key(session, tenant)
        self.headers = {"Authorization": f"Bearer {self.key}"}

    def close(self) -> None:
        """Close the app's pooled connections (else they leak into the next scenario)."""
        self.app.extensions[EXTENSION].sessions.kw["bind"].dispose()

    def client(self) -> FlaskClient:
        """A new client (one per thread: a test client is not thread-safe)."""
        return self.app.test_client()

    def submit(self, body: dict[str, Any], idempotency_key: str | None = None) -> str:
        response = self.submit_response(body, idempotency_key)
        assert response.status_code == 202, response.get_data(as_text=True)
        return response.get_json()["id"]

    def submit_response(self, body: dict[str, Any], idempotency_key: str | None = None) -> Any:
        headers = dict(self.headers)
        if idempotency_key is not None:
            headers["Idempotency-Key"] = idempotency_key
        with self.client() as client:
            return client.post(f"{API}/jobs", json=body, headers=headers)

    def get(self, path: str) -> Any:
        with self.client() as client:
            return client.get(f"{API}{path}", headers=self.headers)

    def cancel(self, job_id: str) -> Any:
        with self.client() as client:
            response = client.post(f"{API}/jobs/{job_id}/cancel", headers=self.headers)
        assert response.status_code == 202, response.get_data(as_text=True)
        return response.get_json()
