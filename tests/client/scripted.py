"""Tiny real HTTP servers for what a healthy Deltaflow never does on demand.

``ScriptedServer`` answers each request with the next scripted reply (status, headers,
body), or drops the connection without answering for a ``DROP`` entry, and records what
it received. ``DroppingProxy`` forwards every request to a real server but, for the
first request matching a path, drops the connection after the server has answered: the
client sees a broken connection for a request the server did carry out.
"""

from __future__ import annotations

import json
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import requests

DROP = "drop"


@dataclass
class Received:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes


@dataclass
class Reply:
    status: int
    body: Any = None
    headers: dict[str, str] = field(default_factory=dict)


class _Server:
    def __init__(self) -> None:
        self.received: list[Received] = []
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:  # keep pytest's output clean
                pass

            def _handle(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                seen = Received(self.command, self.path, dict(self.headers), body)
                owner.received.append(seen)
                owner.handle(self, seen)

            do_GET = do_POST = do_DELETE = _handle

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(
            target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )

    def handle(self, handler: BaseHTTPRequestHandler, seen: Received) -> None:
        raise NotImplementedError

    @staticmethod
    def reply(handler: BaseHTTPRequestHandler, status: int, body: bytes, headers: dict) -> None:
        handler.send_response(status)
        for name, value in headers.items():
            handler.send_header(name, value)
        handler.send_header("Content-Length", str(len(body)))
        handler.end_headers()
        handler.wfile.write(body)

    @staticmethod
    def drop(handler: BaseHTTPRequestHandler) -> None:
        handler.close_connection = True
        handler.connection.shutdown(2)

    def __enter__(self) -> _Server:
        self.thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join(timeout=10)


class ScriptedServer(_Server):
    def __init__(self, *replies: Reply | str) -> None:
        super().__init__()
        self.replies = list(replies)

    def handle(self, handler: BaseHTTPRequestHandler, seen: Received) -> None:
        reply = self.replies.pop(0)
        if reply == DROP:
            self.drop(handler)
            return
        assert isinstance(reply, Reply)
        problem = reply.status >= 400
        headers = {
            "Content-Type": "application/problem+json" if problem else "application/json",
            **reply.headers,
        }
        self.reply(handler, reply.status, json.dumps(reply.body).encode(), headers)


class DroppingProxy(_Server):
    def __init__(self, upstream: str, drop_first: str) -> None:
        super().__init__()
        self.upstream = upstream
        self.drop_first = drop_first
        self.dropped = False

    def handle(self, handler: BaseHTTPRequestHandler, seen: Received) -> None:
        headers = {k: v for k, v in seen.headers.items() if k.lower() != "host"}
        answer = requests.request(
            seen.method, self.upstream + seen.path, headers=headers, data=seen.body, timeout=30
        )
        if not self.dropped and seen.path.startswith(self.drop_first):
            self.dropped = True
            self.drop(handler)
            return
        passed = {"Content-Type": answer.headers.get("Content-Type", "application/json")}
        self.reply(handler, answer.status_code, answer.content, passed)
