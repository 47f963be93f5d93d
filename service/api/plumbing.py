"""The request plumbing every view shares, in one place: the per-request context (settings,
session, tenant and key, dispatcher), authentication (through ``service.keycache``), the
malformed-JSON check, the one way to make a blueprint, the request models every list or
conditional GET uses, and the response helpers.

A view parses (flask-openapi3 validates its pydantic arguments), calls one domain
function and dumps the result with ``respond``. Every error leaves through
``service.api.errors``.
"""

from __future__ import annotations

import gzip
import json
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, Literal

import orjson
from flask import Response, current_app, g, request
from flask_openapi3 import APIBlueprint, Tag
from pydantic import BaseModel, ConfigDict, Field, create_model
from sqlalchemy import Engine
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session, sessionmaker
from werkzeug.exceptions import BadRequest as WerkzeugBadRequest

from service import logs, queue
from service.api import API_PREFIX, hostile
from service.config import Settings
from service.curves import CurveAsk, parse_fields
from service.dispatch import Dispatcher
from service.keycache import KeyCache
from service.problems import BadRequest, Unauthorized, UnsupportedMediaType
from service.quotas import QuotaLimits
from service.tenants import Identity

# --- the per-request context -----------------------------------------------------------------

EXTENSION = "deltaflow"


@dataclass
class Context:
    """What create_app wires once per app and every request shares."""

    settings: Settings
    engine: Engine
    sessions: sessionmaker[Session]
    keys: KeyCache
    # Autocommit (service.db.make_read_engine): a read of one row costs one round trip and
    # builds no Session — the fast path of key lookups and conditional and empty polls.
    reads: Engine


def context() -> Context:
    return current_app.extensions[EXTENSION]


def settings() -> Settings:
    return context().settings


def db() -> Session:
    """The request's session, opened on first use and closed at teardown."""
    if "db" not in g:
        g.db = context().sessions()
    return g.db


def reads() -> Engine:
    """The autocommit engine for single-statement reads (``jobs.job_head``)."""
    return context().reads


def close_db(_exc: BaseException | None = None) -> None:
    session = g.pop("db", None)
    if session is None:
        return
    try:
        session.close()  # rolls back anything uncommitted
    except DBAPIError:
        # The connection died under the request (a database restart): the answer, a 503,
        # is already made; the rollback cannot reach the server, so drop the connection
        # instead of letting the teardown raise past the error handlers.
        session.invalidate()


def dispatcher() -> Dispatcher:
    """Runs dispatch passes with this app's settings (``service.dispatch``)."""
    return queue.dispatcher(settings())


def quota_defaults() -> QuotaLimits:
    """The tenants' default quotas (``DELTAFLOW_QUOTA_*``; ``service.quotas``)."""
    return QuotaLimits.defaults(settings())


def tenant_id() -> str:
    """The authenticated tenant (set by the blueprint's auth hook)."""
    return g.tenant_id


def current_key() -> Identity | None:
    """The authenticated key of this request — ``tenant_id``, ``key_id``, ``prefix`` — or
    None outside an authenticated route. What per-key rate limits key on."""
    return g.get("identity")


# --- before every API request: authenticate, then check that a JSON body parses --------------

CHALLENGE = 'Bearer realm="deltaflow"'
SECURITY_SCHEMES = {"bearerAuth": {"type": "http", "scheme": "bearer"}}
SECURITY: list[dict[str, list[str]]] = [{"bearerAuth": []}]


def require_tenant() -> None:
    """Sets ``g.identity`` and ``g.tenant_id`` or raises 401 with a challenge (before the
    input is read). Keys are looked up through the app's ``KeyCache``: most requests
    touch no database here, and a miss holds a connection only for its one read."""
    header = request.headers.get("Authorization", "")
    scheme, _, key = header.partition(" ")
    if not header:
        raise Unauthorized(
            "missing API key: send 'Authorization: Bearer <key>'",
            headers={"WWW-Authenticate": CHALLENGE},
        )
    identity = context().keys.authenticate(key.strip()) if scheme.lower() == "bearer" else None
    if identity is None:
        raise Unauthorized(
            "invalid API key",
            headers={"WWW-Authenticate": CHALLENGE + ', error="invalid_token"'},
        )
    g.identity = identity
    g.tenant_id = identity.tenant_id
    logs.bind(tenant=identity.tenant_id)


def require_wellformed_json() -> None:
    """A JSON body that does not parse is a 400, not a 422.

    flask-openapi3 parses bodies with ``silent=True`` (turning garbage into ``None``), so
    malformed JSON is caught here first. Before parsing, the body is budgeted
    (``hostile.check_json_body``: size, nesting depth, NUL characters); a body that is
    neither JSON nor a multipart upload is 415. NUL in the path or query is 422.
    """
    limits = settings().limits
    hostile.check_url(request.path, request.args, request.headers.items())
    if request.method in ("GET", "HEAD", "DELETE", "OPTIONS"):
        return
    if not request.is_json:
        if request.mimetype != "multipart/form-data" and (request.content_length or 0) > 0:
            raise UnsupportedMediaType(
                f"send application/json (or multipart/form-data to upload a dataset file), "
                f"not {request.mimetype or 'a body without a Content-Type'}"
            )
        return
    length = request.content_length
    if length is not None and limits.json_body_bytes < length <= limits.body_bytes:
        raise hostile.json_too_large(length, limits)
    # A body without a length, too (over body_bytes: the app's own 413, as for any body).
    request.max_content_length = min(limits.json_body_bytes, limits.body_bytes)
    data = request.get_data(cache=True)
    if not data:
        return  # a missing body is a validation error (422), reported by the view
    hostile.check_json_text(data, limits)
    try:
        body = request.get_json(cache=True)  # cached: the view's validation reuses the parse
    except (WerkzeugBadRequest, RecursionError):
        raise BadRequest("the request body is not valid JSON") from None
    hostile.check_json_nul(data, body)


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

# Epochs are 32-bit integers in the database: a larger one is 422, not a 500 (issue 11:
# since=2**70 on SQLite, 2**40 on PostgreSQL).
MAX_EPOCH = 2**31 - 1

_SCHEMAS: dict[type[BaseModel], dict[str, Any]] = {}


class RequestModel(BaseModel):
    """The base of every query and header model.

    flask-openapi3 asks a query or header model for its JSON schema on every request (to
    find list-valued fields); pydantic builds it afresh each time, which cost more than the
    rest of a conditional GET. The schema of a class never changes, so it is built once.
    """

    @classmethod
    def model_json_schema(cls, *args: Any, **kwargs: Any) -> dict[str, Any]:
        if args or kwargs:  # the OpenAPI document asks with options: not cached
            return super().model_json_schema(*args, **kwargs)
        schema = _SCHEMAS.get(cls)
        if schema is None:
            schema = _SCHEMAS[cls] = super().model_json_schema()
        return schema


class PageQuery(RequestModel):
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
        default=None,
        alias="Idempotency-Key",
        min_length=1,
        max_length=200,
        pattern=r"^[\x20-\x7e]+$",  # printable ASCII: it is stored, compared and logged
        description=repeat,
    )
    return create_model(name, __base__=RequestModel, idempotency_key=(str | None, key))


class CurveRangeQuery(RequestModel):
    """What both curve endpoints take besides their cursor (``service.curves.CurveAsk``)."""

    model_config = ConfigDict(extra="forbid")

    from_epoch: int | None = Field(
        default=None, ge=0, le=MAX_EPOCH, description="First epoch of the range."
    )
    to_epoch: int | None = Field(
        default=None, ge=0, le=MAX_EPOCH, description="Last epoch of the range."
    )
    fields: str | None = Field(
        default=None,
        max_length=300,
        description="Comma list of point fields (default train_loss,val_loss,train_accuracy,"
        "val_accuracy; grad_norms and activation_stats only when named).",
    )
    format: Literal["points", "columns"] = Field(
        default="points", description="columns: {columns: {epoch: [...], <field>: [...]}}."
    )

    def ask(self, since: int = 0, max_points: int | None = None) -> CurveAsk:
        return CurveAsk(
            since=since,
            from_epoch=self.from_epoch,
            to_epoch=self.to_epoch,
            max_points=max_points,
            fields=parse_fields(self.fields),
            columns=self.format == "columns",
        )


class ConditionalHeaders(RequestModel):
    if_none_match: str | None = Field(
        default=None,
        alias="If-None-Match",
        max_length=1000,
        description="An ETag from an earlier answer: 304 if nothing changed.",
    )


# --- responses -------------------------------------------------------------------------------


def dumps(data: Any) -> bytes:
    """Compact JSON. orjson writes a 500-point curve ~20x faster than the standard library
    (0.27 against 5.5 ms here); what it refuses (integers beyond 64 bits) falls back."""
    try:
        return orjson.dumps(data, option=orjson.OPT_SERIALIZE_NUMPY | orjson.OPT_NON_STR_KEYS)
    except TypeError:  # orjson.JSONEncodeError is a TypeError
        return json.dumps(data, separators=(",", ":")).encode()


# JSON answers at least this large go gzipped to a client that accepts it: a 1,000-job
# batch summary is ~600 kB of JSON and ~5x smaller gzipped; small answers are not worth it.
GZIP_MIN_BYTES = 8192
GZIP_LEVEL = 5


def respond(
    data: Any, status: int = 200, headers: dict[str, str] | None = None, etag: str | None = None
) -> Response:
    body = dumps(data)
    encoded = len(body) >= GZIP_MIN_BYTES and request.accept_encodings["gzip"] > 0
    if encoded:
        body = gzip.compress(body, compresslevel=GZIP_LEVEL, mtime=0)
    response = Response(body, status=status, mimetype="application/json")
    if encoded:
        response.headers["Content-Encoding"] = "gzip"
    if len(body) >= GZIP_MIN_BYTES or encoded:
        response.vary.add("Accept-Encoding")
    for name, value in (headers or {}).items():
        response.headers[name] = value
    if etag is not None:
        response.set_etag(etag)
    return response


def csv_response(body: str | Iterable[str], filename: str) -> Response:
    """CSV text (or lines, streamed) as an attachment named ``filename``."""
    response = Response(body, mimetype="text/csv")
    response.headers["Content-Disposition"] = f'attachment; filename="{filename}"'
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
