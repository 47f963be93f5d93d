"""One logging setup for the API and the worker: text (default) or JSON lines
(``DELTAFLOW_LOG_FORMAT=json``), with the request, tenant, job and worker each line is
about, and no credential in any line.

- **Context.** ``request_id``, ``tenant``, ``job_id`` and ``worker`` are context variables
  (``bind``): the API binds the request id and tenant per request
  (``service.api.tracing``), the worker binds the job, the request id that came with its
  message (``REQUEST_ID_HEADER``) and the worker's name per task (``worker.logging``).
  ``ContextFilter`` copies the known ones onto every record, so library lines (gunicorn,
  Celery, SQLAlchemy) carry them too.
- **JSON.** python-json-logger's formatter: every line one object with ``ts`` (ISO 8601,
  UTC), ``level``, ``msg``, ``logger`` and the context fields. Chosen over structlog because
  every log call here — ours, gunicorn's, Celery's, waitress's — is the standard library's
  ``logging`` with lazy ``%`` arguments: a formatter and a filter on the root handler
  turn all of them into JSON without touching a call, where structlog would add a second
  logging API and still need its stdlib bridge (``ProcessorFormatter``) for the libraries.
- **Redaction.** ``redact`` runs over every formatted line, text or JSON, exception text
  included: API keys keep only their 12-character prefix (what ``list-keys`` shows),
  bearer tokens, webhook secrets (``whsec_…``) and URL passwords are replaced.

Framework-free (standard library and python-json-logger): the worker imports it too.
"""

from __future__ import annotations

import logging
import re
import sys
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any

from pythonjsonlogger.json import JsonFormatter

FORMATS = ("text", "json")
REQUEST_ID_HEADER = "deltaflow_request_id"  # the Celery message header
FIELDS = ("request_id", "tenant", "job_id", "worker")
_VARS: dict[str, ContextVar[str | None]] = {
    name: ContextVar(f"deltaflow_{name}", default=None) for name in FIELDS
}
# A client's X-Request-ID is kept only if it is this tame (it ends up in every line).
_REQUEST_ID = re.compile(r"[A-Za-z0-9._:+=/-]{1,128}")

_SECRETS = (
    (re.compile(r"(dfk_[A-Za-z0-9_-]{8})[A-Za-z0-9_-]+"), r"\1…"),  # API key -> its prefix
    (re.compile(r"whsec_[A-Za-z0-9+/=_-]+"), "whsec_[redacted]"),
    (re.compile(r"(?i)\b(bearer|basic)\s+[^\s\"',]+"), r"\1 [redacted]"),
    (re.compile(r"(?i)(authorization[\"']?\s*[:=]\s*[\"']?)[^\"',}]+"), r"\1[redacted]"),
    (re.compile(r"(://[^:/@\s]+:)[^@/\s]+@"), r"\1***@"),
)


def redact(text: str) -> str:
    for pattern, replacement in _SECRETS:
        text = pattern.sub(replacement, text)
    return text


def bind(**fields: str | None) -> None:
    """Set context fields for the rest of this thread's (or task's) work; None clears."""
    for name, value in fields.items():
        _VARS[name].set(value)


@contextmanager
def bound(**fields: str | None) -> Iterator[None]:
    """Set context fields for the block only, then restore what was there."""
    tokens = [(_VARS[name], _VARS[name].set(value)) for name, value in fields.items()]
    try:
        yield
    finally:
        for var, token in reversed(tokens):
            var.reset(token)


def clear() -> None:
    for var in _VARS.values():
        var.set(None)


def current(name: str) -> str | None:
    return _VARS[name].get()


def request_id_from(header: str | None) -> str:
    """The client's X-Request-ID if it is a sane token, else a new one."""
    if header and _REQUEST_ID.fullmatch(header):
        return header
    return uuid.uuid4().hex


class ContextFilter(logging.Filter):
    """Puts the known context fields on each record (a field the call passed wins)."""

    defaults: dict[str, str] = {}  # per process, e.g. {"worker": "w1@host"}

    def filter(self, record: logging.LogRecord) -> bool:
        for name in FIELDS:
            if getattr(record, name, None) is None:
                value = _VARS[name].get() or self.defaults.get(name)
                if value is not None:
                    setattr(record, name, value)
        return True


class RedactingJsonFormatter(JsonFormatter):
    def format(self, record: logging.LogRecord) -> str:
        return redact(super().format(record))


class RedactingTextFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        line = super().format(record)
        context = " ".join(f"{n}={getattr(record, n)}" for n in FIELDS if hasattr(record, n))
        return redact(f"{line} [{context}]" if context else line)


TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


def formatter(fmt: str) -> logging.Formatter:
    if fmt == "json":
        return RedactingJsonFormatter(
            "{levelname}{message}{name}",
            style="{",
            rename_fields={"levelname": "level", "message": "msg", "name": "logger"},
            timestamp="ts",
        )
    return RedactingTextFormatter(TEXT_FORMAT)


def configure(fmt: str = "text", level: int | str = logging.INFO, stream: Any = None) -> None:
    """The root logger writes one formatted line per record to ``stream`` (stderr)."""
    if fmt not in FORMATS:
        raise ValueError(f"DELTAFLOW_LOG_FORMAT must be one of {', '.join(FORMATS)}: {fmt!r}")
    root = logging.getLogger()
    for old in list(root.handlers):
        if getattr(old, "deltaflow", False):
            root.removeHandler(old)
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.deltaflow = True  # type: ignore[attr-defined]
    install(handler, fmt)
    root.addHandler(handler)
    root.setLevel(level)
    logging.captureWarnings(True)  # warnings become records too (one JSON line each)


def install(handler: logging.Handler, fmt: str) -> None:
    """Our formatter and context filter on a handler someone else created (gunicorn's)."""
    handler.setFormatter(formatter(fmt))
    if not any(isinstance(f, ContextFilter) for f in handler.filters):
        handler.addFilter(ContextFilter())


class RedactFilter(logging.Filter):
    """For handlers whose formatter is not ours (Celery's text format): the message is
    formatted and redacted before it reaches the formatter."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        cleaned = redact(message)
        if cleaned != message:
            record.msg, record.args = cleaned, None
        return True
