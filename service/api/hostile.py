"""What every API request is checked for before a view sees it (issue 11, docs/security.md).

- a JSON body over ``json_body_bytes`` is 413 before it is read;
- nesting deeper than ``json_depth`` is 422 before it is parsed (the parser, pydantic and
  the sweep code all recurse: 5,000 levels were a 500), measured on the raw bytes with the
  strings taken out, in C speed (a regex and numpy);
- a NUL character anywhere (path, query, a JSON string or key) is 422 naming where:
  PostgreSQL's text refuses NUL, and no name, id or label needs one.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import Any

import numpy as np
from flask import Flask, Response, request

from service.api import API_PREFIX
from service.config import Limits, limit_env
from service.problems import Invalid, PayloadTooLarge

# A JSON string, escapes included (the unrolled form: no backtracking).
_STRING = re.compile(rb'"[^"\\]*(?:\\.[^"\\]*)*"', re.DOTALL)
_NOT_BRACKETS = bytes(b for b in range(256) if b not in b"[]{}")
_OPEN = np.frombuffer(b"[{", dtype=np.uint8)


def json_too_large(length: int, limits: Limits) -> PayloadTooLarge:
    detail = (
        f"a JSON body of {length} bytes; at most {limits.json_body_bytes} "
        f"({limit_env('json_body_bytes')}): upload large datasets as CSV or NPZ files"
    )
    return PayloadTooLarge(detail, errors=[(["body"], detail)])


def json_depth(data: bytes) -> int:
    """How deep arrays and objects nest in ``data`` (strings do not count)."""
    brackets = _STRING.sub(b"", data).translate(None, _NOT_BRACKETS)
    if not brackets:
        return 0
    codes = np.frombuffer(brackets, dtype=np.uint8)
    steps = np.where(np.isin(codes, _OPEN), 1, -1)
    return int(np.cumsum(steps).max())


def check_json_text(data: bytes, limits: Limits) -> None:
    depth = json_depth(data)
    if depth > limits.json_depth:
        raise Invalid.at(
            ["body"],
            f"JSON nested {depth} deep; at most {limits.json_depth} ({limit_env('json_depth')})",
        )


def check_json_nul(data: bytes, body: Any) -> None:
    """422 at the first string (key or value) holding a NUL; cheap unless one is escaped."""
    if b"\\u0000" not in data:
        return
    stack: list[tuple[list[str | int], Any]] = [(["body"], body)]
    while stack:
        loc, value = stack.pop()
        if isinstance(value, str):
            if "\x00" in value:
                raise Invalid.at(loc, "a NUL character is not allowed")
        elif isinstance(value, dict):
            for key, item in value.items():
                if "\x00" in key:
                    raise Invalid.at(loc, "a NUL character is not allowed in a key")
                stack.append(([*loc, key], item))
        elif isinstance(value, list):
            stack.extend(([*loc, i], item) for i, item in enumerate(value))


def check_url(path: str, args: Mapping[str, str], headers: Iterable[tuple[str, str]]) -> None:
    """NUL in the path, the query string or a header: 422 at ``["path"]``,
    ``["query", name]`` or ``["header", name]``."""
    for name, value in headers:
        if "\x00" in value:
            raise Invalid.at(["header", name], "a NUL character is not allowed")
    if "\x00" in path:
        raise Invalid.at(["path"], "a NUL character is not allowed in the path")
    for name, value in args.items(multi=True) if hasattr(args, "getlist") else args.items():
        if name == "filter":  # service.search answers NUL in a filter, naming the token
            continue
        if "\x00" in name or "\x00" in value:
            raise Invalid.at(["query", name.replace("\x00", "")], "a NUL character is not allowed")


# --- response headers -------------------------------------------------------------------

# The dashboard loads its own scripts and the vendored plotly.min.js (no inline script,
# no eval); Plotly injects <style> elements and draws images from data: and blob: URLs.
CONTENT_SECURITY_POLICY = (
    "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; "
    "img-src 'self' data: blob:; font-src 'self' data:; connect-src 'self'; "
    "object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
)
# Swagger UI (/api/v1/docs) starts itself from an inline script.
DOCS_POLICY = CONTENT_SECURITY_POLICY.replace(
    "script-src 'self'", "script-src 'self' 'unsafe-inline'"
)


def init_app(app: Flask) -> None:
    """Every answer: CSP, nosniff, no referrer; API answers are never stored by caches
    (an ETag still lets a client ask If-None-Match)."""

    @app.after_request
    def _security_headers(response: Response) -> Response:
        headers = response.headers
        docs = request.path == API_PREFIX + "/docs"
        headers.setdefault(
            "Content-Security-Policy", DOCS_POLICY if docs else CONTENT_SECURITY_POLICY
        )
        headers.setdefault("X-Content-Type-Options", "nosniff")
        headers.setdefault("Referrer-Policy", "no-referrer")
        headers.setdefault("X-Frame-Options", "DENY")
        if request.path.startswith(API_PREFIX) and "Cache-Control" not in headers:
            headers["Cache-Control"] = "no-store"
        return response
