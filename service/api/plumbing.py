"""The request plumbing every view shares, in one place: the per-request context (settings,
session, tenant, sender), authentication, the malformed-JSON check, the one way to make a
blueprint, the request models every list or conditional GET uses, and the response helpers.

A view parses (flask-openapi3 validates its pydantic arguments), calls one domain
function and dumps the result with ``respond``. Every error leaves through
``service.api.errors``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from flask import Response, current_app, g, request
from flask_openapi3 import APIBlueprint, Tag
from pydantic import BaseModel, ConfigDict, Field, create_model
from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker
from werkzeug.exceptions import BadRequest as WerkzeugBadRequest

from service import queue, tenants
from service.api import API_PREFIX
from service.config import Settings
from service.dispatch import Sender
from service.problems import BadRequest, Unauthorized

# --- the per-request context -----------------------------------------------------------------

EXTENSION = "deltaflow"


@dataclass
class Context:
    """What create_app wires once per app and every request shares."""

    settings: Settings
    engine: Engine
    sessions: sessionmaker[Session]


def context() -> Context:
    return current_app.extensions[EXTENSION]


def settings() -> Settings:
    return context().settings


def db() -> Session:
    """The request's session, opened on first use and closed at teardown."""
    if "db" not in g:
        g.db = context().sessions()
    return g.db


def close_db(_exc: BaseException | None = None) -> None:
    session = g.pop("db", None)
    if session is not None:
        session.close()  # rolls back anything uncommitted


def sender() -> Sender:
    """Sends training messages with this app's settings (``service.dispatch``)."""
    return queue.sender(settings())


def tenant_id() -> str:
    """The authenticated tenant (set by the blueprint's auth hook)."""
    return g.tenant_id


# --- before every API request: authenticate, then check that a JSON body parses --------------

CHALLENGE = 'Bearer realm="deltaflow"'
SECURITY_SCHEMES = {"bearerAuth": {"type": "http", "scheme": "bearer"}}
SECURITY: list[dict[str, list[str]]] = [{"bearerAuth": []}]


def require_tenant() -> None:
    """Sets ``g.tenant_id`` or raises 401 with a challenge (before the input is read)."""
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


def require_wellformed_json() -> None:
    """A JSON body that does not parse is a 400, not a 422.

    flask-openapi3 parses bodies with ``silent=True`` (turning garbage into ``None``), so
    malformed JSON is caught here first. Reading the body also enforces the size limit (413).
    """
    if not request.is_json or request.method in ("GET", "HEAD", "DELETE", "OPTIONS"):
        return
    if not request.get_data(cache=True):
        return  # a missing body is a validation error (422), reported by the view
    try:
        request.get_json(cache=True)  # cached: the view's validation reuses the parse
    except WerkzeugBadRequest:
        raise BadRequest("the request body is not valid JSON") from None


def api_blueprint(name: str, import_name: str, url_prefix: str, tag: str) -> APIBlueprint:
    """A blueprint whose every request is authenticated (401 first) and, if JSON, parsed (400).

    ``url_prefix`` is relative to ``/api/v1``; register it with ``app.register_api(bp)``.
    """
    bp = APIBlueprint(
        name,
        import_name,
        url_prefix=API_PREFIX + url_prefix,
        abp_tags=[Tag(name=tag)],
        abp_security=SECURITY,
    )
    bp.before_request(require_tenant)
    bp.before_request(require_wellformed_json)
    return bp


# --- request models shared by the views ------------------------------------------------------


class PageQuery(BaseModel):
    """``?limit=&cursor=`` (subclass it, keeping the ``Query`` suffix, to add filters).

    Unknown query parameters are 422: a misspelt filter must not silently list everything.
    """

    model_config = ConfigDict(extra="forbid")

    limit: int | None = Field(default=None, ge=1, description="Page size (capped by the server).")
    cursor: str | None = Field(default=None, max_length=200, description="From the last page.")


def idempotency_headers(name: str, repeat: str) -> type[BaseModel]:
    """The headers of a create that honours ``Idempotency-Key``; ``repeat`` is its doc.

    ``name`` must end in ``Headers``: a validation error then points at the header.
    """
    key = Field(
        default=None, alias="Idempotency-Key", min_length=1, max_length=200, description=repeat
    )
    return create_model(name, idempotency_key=(str | None, key))


class ConditionalHeaders(BaseModel):
    if_none_match: str | None = Field(
        default=None,
        alias="If-None-Match",
        max_length=1000,
        description="An ETag from an earlier answer: 304 if nothing changed.",
    )


# --- responses -------------------------------------------------------------------------------


def respond(
    data: Any, status: int = 200, headers: dict[str, str] | None = None, etag: str | None = None
) -> Response:
    response = Response(
        json.dumps(data, separators=(",", ":")), status=status, mimetype="application/json"
    )
    for name, value in (headers or {}).items():
        response.headers[name] = value
    if etag is not None:
        response.set_etag(etag)
    return response


def not_modified(etag: str) -> Response | None:
    """A 304 when the request's If-None-Match names ``etag`` (or is ``*``), else None."""
    if request.if_none_match and request.if_none_match.contains_weak(etag):
        response = Response(status=304)
        response.set_etag(etag)
        return response
    return None


def no_content() -> Response:
    return Response(status=204)
