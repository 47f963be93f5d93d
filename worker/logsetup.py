"""The worker's logging: ``service.logs`` wired to Celery's signals.

- ``DELTAFLOW_LOG_FORMAT=json``: Celery's own setup is replaced (a ``setup_logging``
  receiver), in the main process and in every pool child, by ``service.logs.configure``;
  every line is a JSON object.
- text (default): Celery's familiar format stays; its handlers get the context filter
  and the redaction (``service.logs.RedactFilter``).

Per task, the job id (the train task's argument), the request id its message carries
(``service.logs.REQUEST_ID_HEADER``, set by the API that sent it) and the worker's node
name are bound, so every line of a run — ours, the engine's caller's, Celery's own
"Task … succeeded" — says which job and which request it belongs to.
"""

from __future__ import annotations

import json
import logging
import os
import sys
from datetime import UTC, datetime
from typing import Any

from celery import signals
from celery.apps import worker as celery_worker_app

from service import logs
from service.config import Settings
from service.queue import TRAIN_TASK

FORMAT = Settings.from_env().log_format


def _setup_json(loglevel: Any = logging.INFO, **_kwargs: Any) -> None:
    logs.configure("json", loglevel or logging.INFO)


def _decorate_text(logger: logging.Logger, **_kwargs: Any) -> None:
    for handler in logger.handlers:
        if not any(isinstance(f, logs.RedactFilter) for f in handler.filters):
            handler.addFilter(logs.ContextFilter())
            handler.addFilter(logs.RedactFilter())


def _no_banner(sender: Any = None, instance: Any = None, conf: Any = None, **_kw: Any) -> None:
    """Celery prints a multi-line banner to stdout at start; in JSON it is one line."""
    if instance is not None:
        instance.quiet = True
    logging.getLogger(__name__).info(
        "worker %s starting: concurrency=%s queues=%s",
        sender,
        getattr(instance, "concurrency", None),
        ",".join(sorted(getattr(getattr(instance, "app", None), "amqp", None).queues or []))
        if instance is not None and getattr(instance, "app", None) is not None
        else "",
    )


def _say_json(msg: str, f: Any = None) -> None:
    """Celery writes its shutdown notices straight to a stream from signal handlers
    (``celery.apps.worker.safe_say``), past logging; in JSON they are JSON lines, written
    with one ``os.write`` as Celery does (no logging lock inside a signal handler)."""
    line = json.dumps(
        {
            "ts": datetime.now(UTC).isoformat(),
            "level": "WARNING",
            "msg": logs.redact(str(msg)),
            "logger": "celery.apps.worker",
            **({"worker": w} if (w := logs.ContextFilter.defaults.get("worker")) else {}),
        }
    )
    stream = f or sys.__stdout__
    try:
        os.write(stream.fileno(), (line + "\n").encode())
    except (AttributeError, OSError, ValueError):
        pass


if FORMAT == "json":
    celery_worker_app.safe_say = _say_json
    logs.configure("json")  # now: what Celery says before its logging setup is JSON too
    signals.setup_logging.connect(_setup_json, weak=False)
    signals.celeryd_after_setup.connect(_no_banner, weak=False)
else:
    signals.after_setup_logger.connect(_decorate_text, weak=False)
    signals.after_setup_task_logger.connect(_decorate_text, weak=False)


@signals.celeryd_init.connect
def _name_the_worker(sender: Any = None, **_kwargs: Any) -> None:
    logs.ContextFilter.defaults["worker"] = str(sender)


@signals.task_prerun.connect
def _bind_task(task: Any = None, args: Any = None, **_kwargs: Any) -> None:
    request = getattr(task, "request", None)
    request_id = request.get(logs.REQUEST_ID_HEADER) if request is not None else None
    if request_id is None and request is not None:  # older Celery: custom headers nested
        request_id = (getattr(request, "headers", None) or {}).get(logs.REQUEST_ID_HEADER)
    job_id = args[0] if task is not None and task.name == TRAIN_TASK and args else None
    logs.bind(job_id=job_id, request_id=request_id)


@signals.task_postrun.connect
def _unbind_task(**_kwargs: Any) -> None:
    logs.bind(job_id=None, request_id=None, tenant=None)
