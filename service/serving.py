"""How the API is served: gunicorn processes whose connections waitress reads whole.

``deltaflow api`` (and so ``deltaflow up``) runs gunicorn with ``BufferingWorker``:

- gunicorn keeps what it is good at: the listening socket, ``--workers`` processes, their
  restart, signals, graceful stop, and the worker heartbeat;
- inside each process, waitress owns the connections. Its one event-loop thread reads a
  request's headers and body into a buffer (a temporary file past 512 KB) and hands the
  request to one of ``--threads`` application threads only once it is complete; the answer
  is buffered the same way. A client that trickles its body one byte a second therefore
  costs a socket and a buffer, never a thread: ``/healthz`` and every other request go on
  being served (``tests/e2e/test_slow_clients.py``). A connection that sends nothing for
  ``CHANNEL_TIMEOUT_SECONDS`` is closed; a body over the limit is refused (413) while it
  arrives, before it is buffered whole.

docs/serving.md has the measurements behind the choice; docker-compose.yml still puts
nginx in front, with the same limits.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable, Iterable
from typing import Any

from gunicorn.glogging import Logger as GunicornLogger
from gunicorn.workers.base import Worker
from waitress import parser, utilities, wasyncore
from waitress.channel import HTTPChannel
from waitress.server import BaseWSGIServer, create_server
from waitress.task import WSGITask

from service import logs
from service.config import Limits, Settings
from service.problems import PROBLEM_MEDIA_TYPE, PayloadTooLarge, Problem

CHANNEL_TIMEOUT_SECONDS = 30  # like nginx's client_body_timeout
MAX_HEADER_BYTES = 64 * 1024
LOOP_SECONDS = 1.0  # the event loop wakes at least this often, to beat gunicorn's heartbeat


class BodyTooLarge(utilities.RequestEntityTooLarge):
    """waitress refuses a body over the limit as soon as its size is known, before it is
    read; the answer is the API's problem+json, naming the setting."""

    limit = Limits().body_bytes

    def to_response(self, ident: str | None = None) -> tuple[str, list[tuple[str, str]], bytes]:
        problem = PayloadTooLarge(
            f"the request body is over {self.limit} bytes (DELTAFLOW_MAX_BODY_BYTES)"
        )
        body = json.dumps(problem.to_dict()).encode()
        return f"{problem.status} {problem.title}", [("Content-Type", PROBLEM_MEDIA_TYPE)], body


def _problem_to_response(
    self: utilities.Error, ident: str | None = None
) -> tuple[str, list[tuple[str, str]], bytes]:
    """Every answer waitress makes itself (a malformed request, headers too large, an
    application that failed before answering, ...) is problem+json like the API's own,
    never text/plain or HTML (issue 11)."""
    problem = Problem(str(self.body) or self.reason)
    problem.status, problem.title = self.code, self.reason
    problem.slug = self.reason.lower().replace(" ", "-")
    body = json.dumps(problem.to_dict()).encode()
    return f"{self.code} {self.reason}", [("Content-Type", PROBLEM_MEDIA_TYPE)], body


utilities.Error.to_response = _problem_to_response  # type: ignore[method-assign]


class KeepAliveTask(WSGITask):
    """waitress closes the connection after every answer that has no Content-Length, and
    a 304 (or 204) has none — it has no body at all (RFC 9112 section 6.3). Dashboards
    poll with conditional GETs: each 304 would cost them a new TCP connection. Such an
    answer ends with its headers, so the connection stays open (unless the client asked
    to close it)."""

    _bodiless_header = False

    def build_response_header(self) -> bytes:
        self._bodiless_header = (
            self.version == "1.1"
            and not self.has_body
            and not self.close_on_finish
            and self.request.headers.get("CONNECTION", "").lower() != "close"
        )
        try:
            return super().build_response_header()  # type: ignore[no-any-return]
        finally:
            self._bodiless_header = False

    def set_close_on_finish(self) -> None:
        if not self._bodiless_header:
            super().set_close_on_finish()


class KeepAliveChannel(HTTPChannel):
    task_class = KeepAliveTask


class BufferingWorker(Worker):
    """A gunicorn worker serving its share of the listening socket with waitress."""

    def run(self) -> None:
        limits = Settings.from_env().limits
        BodyTooLarge.limit = limits.body_bytes
        parser.RequestEntityTooLarge = BodyTooLarge  # this process serves nothing else
        socket_map: dict[int, Any] = {}
        server = create_server(
            self._logged(self.wsgi),
            map=socket_map,
            sockets=[listener.sock for listener in self.sockets],
            threads=max(1, self.cfg.threads),
            connection_limit=self.cfg.worker_connections,
            channel_timeout=CHANNEL_TIMEOUT_SECONDS,
            max_request_body_size=limits.body_bytes,
            max_request_header_size=MAX_HEADER_BYTES,
            asyncore_use_poll=True,  # select() stops at 1024 descriptors
            ident="deltaflow",
        )
        for listener in self._listeners(socket_map):
            listener.channel_class = KeepAliveChannel
        while self.alive:
            self.notify()
            wasyncore.loop(timeout=LOOP_SECONDS, use_poll=True, map=socket_map, count=1)
            if os.getppid() != self.ppid:  # the arbiter died: stop serving
                break
        self._stop(server, socket_map)

    def _stop(self, server: Any, socket_map: dict[int, Any]) -> None:
        """Stop accepting, let requests in progress finish (up to --graceful-timeout)."""
        for listener in self._listeners(socket_map):
            listener.accepting = False
        deadline = time.monotonic() + self.cfg.graceful_timeout
        while time.monotonic() < deadline and any(
            getattr(channel, "requests", None) for channel in list(socket_map.values())
        ):
            self.notify()
            wasyncore.loop(timeout=0.1, use_poll=True, map=socket_map, count=1)
        server.task_dispatcher.shutdown(cancel_pending=True, timeout=1)
        wasyncore.close_all(socket_map)

    @staticmethod
    def _listeners(socket_map: dict[int, Any]) -> list[BaseWSGIServer]:
        """waitress's listening dispatchers: one per socket gunicorn bound."""
        return [d for d in list(socket_map.values()) if isinstance(d, BaseWSGIServer)]

    def _logged(self, app: Callable[..., Iterable[bytes]]) -> Callable[..., Iterable[bytes]]:
        """One access-log line per request (gunicorn's --access-logfile), without any
        credential: address, request line, status, seconds."""
        access = self.log.access_log
        if not self.log.access_log_enabled:
            return app

        def logged(environ: dict[str, Any], start_response: Callable[..., Any]) -> Any:
            started = time.perf_counter()
            status = ["-"]

            request_id: list[str | None] = [None]

            def remember(code: str, headers: Any, exc_info: Any = None) -> Any:
                status[0] = code.split(" ", 1)[0]
                request_id[0] = next((v for k, v in headers if k == "X-Request-ID"), None)
                return start_response(code, headers, exc_info)

            try:
                return app(environ, remember)
            finally:
                query = environ.get("QUERY_STRING")
                target = environ.get("PATH_INFO", "") + (f"?{query}" if query else "")
                access.info(
                    '%s "%s %s %s" %s %.4f',
                    environ.get("REMOTE_ADDR", "-"),
                    environ.get("REQUEST_METHOD", "-"),
                    target,
                    environ.get("SERVER_PROTOCOL", "-"),
                    status[0],
                    time.perf_counter() - started,
                    extra={"request_id": request_id[0]},
                )

        return logged


class Logger(GunicornLogger):
    """gunicorn's logger (``--logger-class``), plus the one logging setup of
    ``service.logs``: the application's own lines reach stderr through the root logger,
    and with ``DELTAFLOW_LOG_FORMAT=json`` gunicorn's error and access lines are JSON too."""

    def setup(self, cfg: Any) -> None:
        super().setup(cfg)
        fmt = Settings.from_env().log_format
        logs.configure(fmt)
        for logger in (self.error_log, self.access_log):
            for handler in logger.handlers:
                if fmt == "json":
                    logs.install(handler, fmt)
                else:
                    handler.addFilter(logs.RedactFilter())
