"""OpenAPI helpers: problem responses, response headers and hand-documented request bodies.

flask-openapi3 documents models as ``application/json``; errors are
``application/problem+json``, so their responses are declared here as plain dicts that
reference the ``Problem`` component (added to the document by ``service.app``).
"""

from __future__ import annotations

from typing import Any

from flask_openapi3 import APIBlueprint
from flask_openapi3.models import Link, MediaType, PathItem, RequestBody, Response, Schema
from flask_openapi3.utils import get_model_schema
from pydantic import BaseModel

from service.problems import PROBLEM_MEDIA_TYPE, ProblemModel

PROBLEM_REF = {"$ref": "#/components/schemas/Problem"}
_DESCRIPTIONS = {
    400: "Malformed JSON",
    401: "Missing or invalid API key",
    404: "No such resource for this tenant",
    409: "The resource is in the wrong state",
    413: "The request body is over the size limit",
    415: "The body is neither application/json nor multipart/form-data",
    422: "Wrong shape or values (with field locations)",
    429: "Over the API key's rate limit (type rate-limited; Retry-After says when to retry) "
    "or, on a submit or upload, over a tenant quota (type quota-exceeded; quota names it)",
    500: "Unexpected error",
    503: "The database (or broker) is unavailable, or the request ran past its deadline "
    "(DELTAFLOW_REQUEST_TIMEOUT_SECONDS); nothing was stored, retry later",
}
# Every authenticated operation can answer these (429: over the key's rate limit).
COMMON = (401, 422, 429, 500, 503)


def _ref(model: type[BaseModel]) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{model.__name__}"}


def problem_components() -> dict[str, Schema]:
    schema = get_model_schema(ProblemModel, mode="serialization")
    definitions = schema.pop("$defs", {})
    components = {"Problem": Schema(**schema)}
    components.update({name: Schema(**value) for name, value in definitions.items()})
    return components


def problems(*codes: int) -> dict[str | int, Any]:
    """Problem responses for ``codes`` plus the common ones, ready for ``responses=``."""
    out: dict[str | int, Any] = {}
    for code in sorted({*COMMON, *codes}):
        response: dict[str, Any] = {
            "description": _DESCRIPTIONS.get(code, "Error"),
            "content": {PROBLEM_MEDIA_TYPE: {"schema": PROBLEM_REF}},
        }
        if code == 401:
            response["headers"] = {"WWW-Authenticate": {"schema": {"type": "string"}}}
        if code in (429, 503):
            response["headers"] = {"Retry-After": {"schema": {"type": "string"}}}
        out[code] = response
    return out


def over_a_limit(limit_names: str) -> dict[int, Any]:
    """The 413 answer of a synchronous endpoint over one of its compute limits."""
    return {
        413: {
            "description": "Over a size limit of this synchronous endpoint (the detail names "
            f"it: {limit_names})",
            "content": {PROBLEM_MEDIA_TYPE: {"schema": PROBLEM_REF}},
        }
    }


def json_response(
    model: type[BaseModel], description: str, headers: dict[str, str] | None = None
) -> dict[str, Any]:
    """A documented JSON response with optional response headers (name -> description)."""
    return {
        "description": description,
        "content": {"application/json": {"schema": _ref(model)}},
        "headers": {
            name: {"description": text, "schema": {"type": "string"}}
            for name, text in (headers or {}).items()
        },
    }


def csv_response_doc(description: str) -> dict[str, Any]:
    """A documented ``text/csv`` answer (an attachment)."""
    return {
        "description": description,
        "content": {"text/csv": {"schema": {"type": "string"}}},
        "headers": {"Content-Disposition": {"schema": {"type": "string"}}},
    }


def conditional_get(
    model: type[BaseModel],
    description: str,
    etag: str = "",
    unchanged: str = "Not modified since the given ETag",
) -> dict[str | int, Any]:
    """The answers of a GET with an ETag: 200 (with the ETag), 304 and 404."""
    return {
        200: json_response(model, description, {"ETag": etag}),
        304: {"description": unchanged},
        **problems(404),
    }


def register_models(bp: APIBlueprint, *models: type[BaseModel]) -> None:
    """Put models referenced by hand-written responses into the document's components."""
    for model in models:
        schema = get_model_schema(model, mode="serialization")
        for name, value in schema.pop("$defs", {}).items():
            bp.components_schemas[name] = Schema(**value)
        bp.components_schemas[model.__name__] = Schema(**schema)


def document_body(
    bp: APIBlueprint, rule: str, method: str, content: dict[str, type[BaseModel] | dict[str, Any]]
) -> None:
    """Describe a request body that the view parses itself (e.g. JSON or multipart)."""
    media: dict[str, MediaType] = {}
    for media_type, model in content.items():
        if isinstance(model, dict):
            media[media_type] = MediaType(schema=Schema(**model))
            continue
        schema = get_model_schema(model, mode="validation")
        for name, value in schema.pop("$defs", {}).items():
            bp.components_schemas[name] = Schema(**value)
        bp.components_schemas[model.__name__] = Schema(**schema)
        media[media_type] = MediaType(schema=Schema.model_validate(_ref(model)))
    path = (bp.url_prefix or "") + rule
    operation = getattr(bp.paths[path], method.lower())
    operation.requestBody = RequestBody(content=media, required=True)


# OpenAPI links: what each create answers feeds the operations on what it created
# (schemathesis' stateful tests follow them; a client generator can too). For each
# producer (method, path, status): the path parameter each runtime expression fills.
LINKS: dict[tuple[str, str, str], dict[str, str]] = {
    ("post", "/datasets", "201"): {"dataset_id": "$response.body#/id"},
    ("post", "/jobs", "202"): {"job_id": "$response.body#/id"},
    ("post", "/batches", "202"): {
        "batch_id": "$response.body#/id",
        "job_id": "$response.body#/job_ids/0",  # the batch's first job
    },
    ("post", "/webhooks", "201"): {"webhook_id": "$response.body#/id"},
}
_METHODS = ("get", "put", "post", "patch", "delete")


def add_links(paths: dict[str, PathItem], prefix: str) -> None:
    """Link each producer's answer to every operation whose one path parameter it fills."""
    for (method, path, status), expressions in LINKS.items():
        response = getattr(paths[prefix + path], method).responses[status]
        links: dict[str, Link] = {}
        for item in paths.values():
            for target_method in _METHODS:
                target = getattr(item, target_method)
                if target is None:
                    continue
                names = [p.name for p in target.parameters or [] if p.param_in == "path"]
                if len(names) == 1 and names[0] in expressions:
                    links[target.operationId] = Link(
                        operationId=target.operationId,
                        parameters={names[0]: expressions[names[0]]},
                    )
        response.links = links


def document_unsupported_media_type(paths: dict[str, PathItem]) -> None:
    """415 on every operation that takes a body: a body neither ``application/json`` nor
    ``multipart/form-data`` is refused before the view (``plumbing.require_wellformed_json``)."""
    for item in paths.values():
        for method in ("put", "post", "patch"):
            operation = getattr(item, method)
            if operation is not None and "415" not in operation.responses:
                operation.responses["415"] = Response(
                    description=_DESCRIPTIONS[415],
                    content={
                        PROBLEM_MEDIA_TYPE: MediaType(schema=Schema.model_validate(PROBLEM_REF))
                    },
                )
