"""Request ids: ``X-Request-ID`` honoured (when it is a sane token) or assigned, returned
on every answer, bound to the request's log lines (``service.logs``) and sent with any
training message the request dispatches (``service.queue``), so the worker's lines for
that job carry it too."""

from __future__ import annotations

from flask import Flask, Response, g, request

from service import logs

HEADER = "X-Request-ID"


def init_app(app: Flask) -> None:
    @app.before_request
    def _assign() -> None:
        g.request_id = logs.request_id_from(request.headers.get(HEADER))
        logs.clear()
        logs.bind(request_id=g.request_id)

    @app.after_request
    def _return(response: Response) -> Response:
        request_id = g.get("request_id")
        if request_id:
            response.headers[HEADER] = request_id
        return response

    @app.teardown_request
    def _forget(_exc: BaseException | None = None) -> None:
        logs.clear()
