"""The worker's Celery app: ``celery -A worker.celery_app worker`` (or ``deltaflow worker``).

Configuration comes from ``service.queue.celery_config`` (shared with the API's
client-only app): JSON only, acks_late, prefetch 1, reject_on_worker_lost, no result
backend, time limits, visibility timeout above the hard limit.

Queues: ``interactive`` (single jobs) and ``batch`` (sweeps). A worker consumes both,
``interactive`` first: on Redis the queues are polled in the declared order
(``queue_order_strategy="priority"``), so a single job never waits behind a 1000-job
sweep; on the embedded filesystem broker kombu serves them round-robin, which still lets
single jobs through between batch jobs.

The main process also runs the reaper thread (``worker.reaper``) and passes a warm
shutdown on to the runs in its pool children (``worker.shutdown``).
"""

from __future__ import annotations

import logging
import os

# BLAS threads must be fixed before numpy loads (tasks import it). ``deltaflow worker``
# sets them to cores / concurrency; a bare ``celery worker`` gets one thread per child.
for _name in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_name, "1")

from celery import Celery, signals  # noqa: E402
from kombu import Exchange  # noqa: E402
from kombu import Queue as KombuQueue  # noqa: E402

from service.config import Settings  # noqa: E402
from service.queue import APP_NAME, WEBHOOK_QUEUE, celery_config  # noqa: E402
from service.schemas.names import Queue  # noqa: E402
from worker import logsetup, shutdown  # noqa: E402,F401  (logsetup: signal receivers)

log = logging.getLogger(__name__)

QUEUE_ORDER = (Queue.interactive.value, WEBHOOK_QUEUE, Queue.batch.value)


def make_app(settings: Settings) -> Celery:
    app = Celery(APP_NAME, include=["worker.tasks"])
    config = celery_config(settings)  # sets queue_order_strategy="priority" on Redis
    config.update(
        # The same exchange per queue as the API's client app creates on send_task(queue=…).
        task_queues=[KombuQueue(name, Exchange(name), routing_key=name) for name in QUEUE_ORDER],
        worker_hijack_root_logger=True,
        worker_redirect_stdouts=False,
    )
    app.conf.update(config)
    return app


app = make_app(Settings.from_env())

_reaper = None


@signals.worker_ready.connect
def _start_reaper(**_kwargs: object) -> None:
    """One reaper per worker, in the main process (worker_ready never fires in children)."""
    global _reaper
    from worker.reaper import Reaper
    from worker.runtime import runtime

    _reaper = Reaper(runtime())
    _reaper.start()


@signals.worker_shutting_down.connect
def _forward_warm_shutdown(how: str = "Warm", **_kwargs: object) -> None:
    if _reaper is not None:
        _reaper.stop()
    if how == "Warm":
        shutdown.request_stop()
