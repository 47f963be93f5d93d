"""Slow clients and probes over raw sockets, for the slow-client test and benchmark.

``Trickler`` sends a request's headers at once and then its body one byte at a time, as
a hostile or badly connected client does; ``probe`` sends one GET on a fresh connection
and returns how long the answer took (None if none came within the timeout).
"""

from __future__ import annotations

import json
import socket
import threading
import time
from typing import Any


class Trickler(threading.Thread):
    """One connection sending ``body_bytes`` bytes of a JSON body, one every ``interval`` s."""

    def __init__(
        self,
        host: str,
        port: int,
        path: str,
        headers: dict[str, str],
        body_bytes: int,
        interval: float,
        read_timeout: float = 30.0,
    ) -> None:
        super().__init__(name="trickler", daemon=True)
        self.host, self.port, self.path = host, port, path
        self.headers = headers
        self.body = b'"' + b"x" * max(0, body_bytes - 2) + b'"'
        self.interval = interval
        self.read_timeout = read_timeout
        self.sent = 0
        self.sending = True  # until the last byte is sent or the server closed on us
        self.status: int | str = "none"
        self.halt = threading.Event()

    @property
    def total(self) -> int:
        return len(self.body)

    def run(self) -> None:
        try:
            with socket.create_connection((self.host, self.port), timeout=self.read_timeout) as s:
                lines = [f"POST {self.path} HTTP/1.1", f"Host: {self.host}:{self.port}"]
                lines += [f"{k}: {v}" for k, v in self.headers.items()]
                lines += ["Content-Type: application/json", f"Content-Length: {self.total}"]
                s.sendall(("\r\n".join(lines) + "\r\n\r\n").encode())
                for i in range(self.total):
                    if self.halt.wait(self.interval):
                        return
                    try:
                        s.sendall(self.body[i : i + 1])
                    except OSError:
                        self.status = "closed by the server while sending"
                        return
                    self.sent = i + 1
                self.sending = False
                self.status = _status_of(_read_head(s))
        except OSError as exc:
            self.status = f"error: {type(exc).__name__}"
        finally:
            self.sending = False

    def stop(self) -> None:
        self.halt.set()


def probe(host: str, port: int, path: str, headers: dict[str, str], timeout: float) -> float | None:
    """Seconds until a GET on a new connection is answered (status line), or None."""
    status, seconds = probe_status(host, port, path, headers, timeout)
    return None if status is None else seconds


def probe_status(
    host: str, port: int, path: str, headers: dict[str, str], timeout: float
) -> tuple[int | None, float]:
    """(status or None, seconds) of a GET on a new connection."""
    started = time.perf_counter()
    try:
        with socket.create_connection((host, port), timeout=timeout) as s:
            lines = [f"GET {path} HTTP/1.1", f"Host: {host}:{port}", "Connection: close"]
            lines += [f"{k}: {v}" for k, v in headers.items()]
            s.sendall(("\r\n".join(lines) + "\r\n\r\n").encode())
            head = _read_head(s)
    except OSError:
        return None, time.perf_counter() - started
    status = _status_of(head)
    return (status if isinstance(status, int) else None), time.perf_counter() - started


def _read_head(s: socket.socket) -> bytes:
    """Bytes up to the end of the status line (or whatever came before the close)."""
    data = b""
    while b"\r\n" not in data:
        chunk = s.recv(4096)
        if not chunk:
            break
        data += chunk
    return data


def _status_of(head: bytes) -> int | str:
    parts = head.split(b" ", 2)
    if len(parts) >= 2 and parts[0].startswith(b"HTTP/") and parts[1].isdigit():
        return int(parts[1])
    return "closed without an answer" if not head else f"garbled: {head[:40]!r}"


def send_head_only(host: str, port: int, lines: list[str], timeout: float = 10.0) -> bytes:
    """Send a request's head (its body announced by Content-Length but never sent) and
    return the whole answer: what a server says from the headers alone."""
    answer = b""
    with socket.create_connection((host, port), timeout=timeout) as s:
        s.sendall(("\r\n".join(lines) + "\r\n\r\n").encode())
        while True:
            head, _, body = answer.partition(b"\r\n\r\n")
            length = next(
                (int(h.split(b":", 1)[1]) for h in head.split(b"\r\n")
                 if h.lower().startswith(b"content-length:")),
                None,
            )  # fmt: skip
            if length is not None and len(body) >= length:
                return answer
            chunk = s.recv(65536)
            if not chunk:
                return answer
            answer += chunk


def post_too_large(host: str, port: int, key: str, size: int) -> tuple[int, bytes, dict[str, Any]]:
    """Announce a ``size``-byte job body and send none of it: (status, head, problem)."""
    answer = send_head_only(
        host,
        port,
        [
            "POST /api/v1/jobs HTTP/1.1",
            f"Host: {host}:{port}",
            "Content-Type: application/json",
            f"Authorization: Bearer {key}",
            f"Content-Length: {size}",
        ],
    )
    head, _, body = answer.partition(b"\r\n\r\n")
    return int(head.split(b" ", 2)[1]), head, json.loads(body)
