"""Sending training messages by task name with a client-only Celery app.

The API never imports the worker: it commits the job first, then a dispatch pass
(``service.dispatch``) sends only job ids. If the broker is unreachable the job stays
``queued`` and a later pass sends it.
"""

from __future__ import annotations

import logging
import os
import uuid
from functools import lru_cache, partial
from time import monotonic

from celery import Celery
from kombu import Exchange
from kombu import Queue as KombuQueue
from kombu.transport import filesystem
from kombu.utils.json import dumps

from service import logs
from service.config import Settings
from service.dispatch import Dispatcher, Sender
from service.schemas.names import Queue

log = logging.getLogger(__name__)

TRAIN_TASK = "deltaflow.train"
# Webhook deliveries (service.webhooks): short tasks on their own queue, which workers
# consume before ``batch`` (``deltaflow worker --queues``), so a sweep's backlog never
# holds them; a worker of its own (``--queues webhooks``) keeps them off training slots.
DELIVER_TASK = "deltaflow.deliver_webhook"
WEBHOOK_QUEUE = "webhooks"
APP_NAME = "deltaflow"
# Above kombu's 1 s BRPOP timeout; found by tests/faults/test_broker_outage.py.
REDIS_SOCKET_TIMEOUT_SECONDS = 3.0
# The worker consumes ``interactive`` first, then webhook deliveries, then ``batch`` (on
# Redis; see worker.celery_app).
QUEUE_ORDER = (Queue.interactive.value, WEBHOOK_QUEUE, Queue.batch.value)
# RabbitMQ: every queue is a priority queue (x-max-priority), so a message sent with
# ``priority=0..MAX_PRIORITY`` overtakes lower ones waiting in the same queue.
MAX_PRIORITY = 9


def uses_amqp(settings: Settings) -> bool:
    """RabbitMQ (``amqp://``, ``pyamqp://``, ``amqps://``) rather than Redis or files."""
    return settings.broker_url.split("://", 1)[0] in {"amqp", "amqps", "pyamqp"}


def task_queues(settings: Settings) -> list[KombuQueue]:
    """The queues, declared alike by the API's client app and the worker (RabbitMQ refuses
    a second declaration with other arguments): a direct exchange per queue, as
    ``send_task(queue=…)`` uses, and on RabbitMQ ``x-max-priority``."""
    arguments = {"x-max-priority": MAX_PRIORITY} if uses_amqp(settings) else None
    return [
        KombuQueue(name, Exchange(name), routing_key=name, queue_arguments=arguments)
        for name in QUEUE_ORDER
    ]


class _AtomicFilesystemChannel(filesystem.Channel):  # type: ignore[misc]
    """kombu's filesystem channel, writing each message whole before it appears.

    kombu creates the message file, then writes it; a consumer polling in between moves
    and reads an empty file, and its worker dies (``JSONDecodeError``: unrecoverable).
    Rare while only the API sent; a pass after every run sends from the worker's own pool
    child just as its main process polls for the next message (tests/e2e fairness, under
    load). Written to a name the consumer skips, then renamed into place (atomic).
    """

    def _put(self, queue: str, payload: dict, **kwargs: object) -> None:
        name = f"{int(round(monotonic() * 1000))}_{uuid.uuid4()}.{queue}.msg"
        final = os.path.join(self.data_folder_out, name)
        partial_name = final + ".part"  # ".{queue}.msg.part": not a message of any queue
        try:
            with open(partial_name, "wb") as f:
                f.write(dumps(payload).encode())
            os.replace(partial_name, final)
        except OSError as exc:
            raise filesystem.ChannelError(f"Cannot add file {final!r} to directory") from exc


class AtomicFilesystemTransport(filesystem.Transport):  # type: ignore[misc]
    """The embedded broker's transport (``filesystem://``) with atomic writes."""

    Channel = _AtomicFilesystemChannel


def celery_config(settings: Settings) -> dict:
    """The Celery configuration shared by the API's client app and the worker app."""
    hard = settings.hard_time_limit_seconds
    transport: dict = {
        # Above the hard time limit, so a long run never gets a concurrent copy (celery#5935).
        "visibility_timeout": int(hard + 600),
        # BRPOP the worker's queues in -Q order (interactive first), not round-robin (README).
        "queue_order_strategy": "priority",
        # A Redis that hangs with its connections open (paused VM, failover) must not block
        # a send forever (kombu's default): the job stays queued for the reaper instead.
        "socket_timeout": REDIS_SOCKET_TIMEOUT_SECONDS,
        "socket_connect_timeout": REDIS_SOCKET_TIMEOUT_SECONDS,
    }
    if uses_amqp(settings):
        # Publisher confirms: a send returns once RabbitMQ has the message (else it
        # raises and the job stays queued for the reaper). Acks stay late, prefetch 1; a
        # dead worker's unacked message comes back at once when its connection closes
        # (no visibility timeout). RabbitMQ's own consumer_timeout (30 min by default)
        # must be above the hard time limit: docs/scaling.md.
        transport = {"confirm_publish": True}
    elif settings.uses_filesystem_broker:
        queue_dir = settings.broker_dir / "queue"
        control_dir = settings.broker_dir / "control"
        queue_dir.mkdir(parents=True, exist_ok=True)
        control_dir.mkdir(parents=True, exist_ok=True)
        transport = {
            "data_folder_in": str(queue_dir),
            "data_folder_out": str(queue_dir),
            "control_folder": str(control_dir),
            "polling_interval": settings.broker_polling_interval,
        }
    config: dict = {}
    if settings.uses_filesystem_broker:
        config["broker_transport"] = f"{__name__}:AtomicFilesystemTransport"
    return config | {
        "broker_url": settings.broker_url,
        "broker_transport_options": transport,
        "broker_connection_timeout": 2.0,
        "broker_connection_retry_on_startup": True,
        "task_serializer": "json",
        "accept_content": ["json"],
        "result_serializer": "json",
        "task_ignore_result": True,
        "result_backend": None,
        "task_acks_late": True,
        "task_reject_on_worker_lost": True,
        "worker_prefetch_multiplier": 1,
        "task_soft_time_limit": settings.soft_time_limit_seconds,
        "task_time_limit": hard,
        "task_default_queue": "interactive",
        "task_queues": task_queues(settings),
        "worker_hijack_root_logger": False,
    }


@lru_cache(maxsize=8)
def _client(settings: Settings) -> Celery:
    app = Celery(APP_NAME, set_as_current=False)
    app.conf.update(celery_config(settings))
    return app


def _send(
    settings: Settings,
    task: str,
    ids: list[str],
    queue: str,
    failed: str,
    headers: dict[str, str] | None = None,
) -> bool:
    """Publish one task message whose arguments are ids; when the broker is down, log
    ``failed`` (a format of ``%(id)s`` and ``%(queue)s``) and return False, never raise:
    the reaper (a job) or its relay (a delivery) sends it again later."""
    try:
        _client(settings).send_task(
            task,
            args=ids,
            queue=queue,
            headers=headers,
            retry=True,
            retry_policy={"max_retries": 1, "interval_start": 0, "interval_step": 0.2},
        )
    except Exception:  # broker errors vary by transport
        log.warning(failed, {"id": ",".join(ids), "queue": queue}, exc_info=True)
        return False
    return True


def send_train(settings: Settings, job_id: str, queue: str) -> bool:
    """Publish one training message for one job; False (never raise) when the broker is down."""
    return send_jobs(settings, [job_id], queue)


def send_jobs(settings: Settings, job_ids: list[str], queue: str) -> bool:
    """Publish one training message for these jobs (one, or a group of tiny ones that one
    worker slot runs: ``service.dispatch.pack``); False (never raise) when the broker is
    down."""
    # The request that sends the job names it in the worker's log lines (service.logs).
    request_id = logs.current("request_id")
    headers = {logs.REQUEST_ID_HEADER: request_id} if request_id else None
    return _send(
        settings, TRAIN_TASK, job_ids, queue, "dispatch failed job=%(id)s queue=%(queue)s", headers
    )


def send_delivery(settings: Settings, delivery_id: str) -> bool:
    """Publish one webhook delivery task; False (never raise) when the broker is down —
    the reaper's relay sends it again later."""
    return _send(
        settings,
        DELIVER_TASK,
        [delivery_id],
        WEBHOOK_QUEUE,
        "webhook task not sent delivery=%(id)s",
    )


def sender(settings: Settings) -> Sender:
    """``send(job_ids, queue)`` for ``service.dispatch``, bound to these settings."""
    return partial(send_jobs, settings)


def dispatcher(settings: Settings) -> Dispatcher:
    """The fair dispatcher with these settings' policy, sending with ``send_train``."""
    return Dispatcher.from_settings(settings, sender(settings))
