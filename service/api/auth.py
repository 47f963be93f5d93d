"""Bearer API keys: every API request is authenticated before its input is read."""

from __future__ import annotations

from flask import g, request

from service import tenants
from service.api.deps import db
from service.problems import Unauthorized

CHALLENGE = 'Bearer realm="deltaflow"'
SECURITY_SCHEMES = {"bearerAuth": {"type": "http", "scheme": "bearer"}}
SECURITY: list[dict[str, list[str]]] = [{"bearerAuth": []}]


def require_tenant() -> None:
    """A ``before_request`` hook: sets ``g.tenant_id`` or raises 401 with a challenge."""
    header = request.headers.get("Authorization", "")
    scheme, _, key = header.partition(" ")
    if not header:
        raise Unauthorized(
            "missing API key: send 'Authorization: Bearer <key>'",
            headers={"WWW-Authenticate": CHALLENGE},
        )
    tenant = tenants.authenticate(db(), key.strip()) if scheme.lower() == "bearer" else None
    if tenant is None:
        raise Unauthorized(
            "invalid API key",
            headers={"WWW-Authenticate": CHALLENGE + ', error="invalid_token"'},
        )
    g.tenant_id = tenant
