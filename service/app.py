"""The Flask application factory: ``create_app(overrides=None)``.

Wires settings, the database (a session per request), the body limit, problem+json error
handling, the OpenAPI document (``/api/v1/openapi.json``, Swagger UI at ``/api/v1/docs``),
one blueprint per resource, and the dashboard.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

from flask import Response, render_template_string
from flask_openapi3 import Info, OpenAPI
from flask_openapi3_swagger.templates import swagger_html_string

from service import deadlines, metrics
from service.api import (
    API_PREFIX,
    backprop,
    batches,
    datasets,
    deadline,
    health,
    hostile,
    insight,
    jobs,
    meta,
    quota,
    ratelimit,
)
from service.api import webhooks as webhook_views
from service.api.errors import register_error_handlers, validation_error_response
from service.api.openapi import add_links, document_unsupported_media_type, problem_components
from service.api.plumbing import EXTENSION, SECURITY_SCHEMES, Context, close_db
from service.api.tracing import init_app as trace_requests
from service.config import Settings
from service.db import make_engine, make_read_engine, make_sessionmaker
from service.deadlines import statement_timeout_args
from service.keycache import KeyCache

SETTINGS_FIELDS = {f.name for f in dataclasses.fields(Settings)}

# The header of the OpenAPI document and of the Swagger page: for the API's users.
API_DESCRIPTION = """Neural-network training jobs over HTTP, with backpropagation made visible.

Every call needs an API key: press **Authorize** and paste it. `make run` prints the first
one; `make key TENANT=NAME` in the Deltaflow folder prints another. Jobs, batches (sweeps)
and datasets live under `/api/v1`; errors are `application/problem+json` with the location
of each bad field. The README's "API by example" shows each call with curl, and
`docs/client.md` the Python client (`deltaflow_client`) and the `deltaflow jobs|batches|datasets`
command line."""


def _settings(overrides: Mapping[str, Any]) -> Settings:
    """``overrides["settings"]`` wins; else Settings fields in ``overrides`` over the env."""
    given = overrides.get("settings")
    if isinstance(given, Settings):
        return given
    return Settings.from_env(**{k: v for k, v in overrides.items() if k in SETTINGS_FIELDS})


def create_app(overrides: Mapping[str, Any] | None = None) -> OpenAPI:
    """Build the app. ``overrides``: a ``settings`` object, Settings fields, or Flask config."""
    overrides = dict(overrides or {})
    settings = _settings(overrides)
    app = OpenAPI(
        __name__,
        info=Info(title="Deltaflow", version="1.0.0", description=API_DESCRIPTION),
        security_schemes=SECURITY_SCHEMES,
        validation_error_status=422,
        validation_error_callback=validation_error_response,
        doc_prefix=API_PREFIX,
        doc_url="/openapi.json",
    )
    app.config["MAX_CONTENT_LENGTH"] = settings.limits.body_bytes
    # Multipart parts are capped by the same body limit; werkzeug's default 500 KB
    # in-memory part limit would reject an ordinary CSV field.
    app.config["MAX_FORM_MEMORY_SIZE"] = settings.limits.body_bytes
    app.config.update({k: v for k, v in overrides.items() if k not in SETTINGS_FIELDS})
    app.config.pop("settings", None)

    url, timeout = settings.database_url, settings.request_timeout_seconds
    engine = make_engine(url, connect_args=statement_timeout_args(url, timeout))
    deadlines.watch(engine)
    reads = make_read_engine(engine)
    app.extensions[EXTENSION] = Context(
        settings=settings,
        engine=engine,
        sessions=make_sessionmaker(engine),
        keys=KeyCache(reads, settings.auth_cache_seconds),
        reads=reads,
    )
    app.teardown_appcontext(close_db)

    register_error_handlers(app)
    metrics.init_app(app, reads, settings)
    trace_requests(app)
    hostile.init_app(app)
    deadline.init_app(app, settings.request_timeout_seconds)
    ratelimit.init_app(app, settings)
    app.components_schemas.update(problem_components())
    app.register_api(health.bp)
    app.register_api(datasets.bp)
    app.register_api(jobs.bp)
    app.register_api(batches.bp)
    app.register_api(backprop.bp)
    app.register_api(insight.job_bp)
    app.register_api(insight.lr_bp)
    app.register_api(meta.bp)
    app.register_api(webhook_views.bp)
    app.register_api(quota.bp)
    _add_docs(app)

    from service import dashboard

    dashboard.init_app(app)
    _document_only_the_api(app)
    add_links(app.paths, API_PREFIX)
    document_unsupported_media_type(app.paths)
    return app


def _document_only_the_api(app: OpenAPI) -> None:
    """Keep the dashboard's static routes out of the OpenAPI document: not part of the API."""
    for path in list(app.paths):
        if not path.startswith(API_PREFIX) and path not in ("/healthz", "/readyz"):
            del app.paths[path]


def _add_docs(app: OpenAPI) -> None:
    """Swagger UI (served from the installed plugin, no CDN) at ``/api/v1/docs``."""

    @app.get(API_PREFIX + "/docs", doc_ui=False)
    def swagger_docs() -> Response:
        html = render_template_string(
            swagger_html_string,
            doc_url="openapi.json",
            swagger_config=app.config.get("SWAGGER_CONFIG"),
            oauth_config=None,
        )
        return Response(html, mimetype="text/html")
