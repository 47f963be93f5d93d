"""Every API request runs under its deadline (``DELTAFLOW_REQUEST_TIMEOUT_SECONDS``).

The deadline starts when the request reaches the application — waitress (or nginx) has
read it whole by then, so a slow client's upload does not count — and covers
authentication, the view and the session's statements (``service.deadlines``). Past it
the answer is 503 problem+json with ``Retry-After``, and nothing was committed.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from flask import Flask

from service import deadlines


def init_app(app: Flask, seconds: float) -> None:
    inner: Callable[..., Iterable[bytes]] = app.wsgi_app

    def wsgi_app(environ: dict[str, Any], start_response: Callable[..., Any]) -> Any:
        with deadlines.deadline(seconds):
            return inner(environ, start_response)

    app.wsgi_app = wsgi_app  # type: ignore[method-assign]
