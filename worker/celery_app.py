"""The worker's Celery app: ``celery -A worker.celery_app worker`` (or ``deltaflow worker``).

Configuration comes from ``service.queue.celery_config`` (shared with the API's
client-only app): JSON only, acks_late, prefetch 1, reject_on_worker_lost, no result
backend, time limits, visibility timeout above the hard limit.

Queues: ``interactive`` (single jobs) and ``batch`` (sweeps). A worker consumes both,
``interactive`` first: on Redis the queues are polled in the declared order
(``queue_order_strategy="priority"``), so a single job never waits behind a 1000-job
sweep; on RabbitMQ and on the embedded filesystem broker the queues are served
round-robin, which still lets single jobs through between batch jobs. On RabbitMQ every
queue also has ``x-max-priority`` (``service.queue.task_queues``, declared alike by the
API), so a message sent with a higher ``priority`` overtakes others in its queue.

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

from service.config import Settings  # noqa: E402
from service.queue import APP_NAME, celery_config  # noqa: E402
from worker import logsetup, shutdown  # noqa: E402,F401  (logsetup: signal receivers)

log = logging.getLogger(__name__)


def make_app(settings: Settings) -> Celery:
    app = Celery(APP_NAME, include=["worker.tasks"])
    config = celery_config(settings)  # queues, and queue_order_strategy="priority" on Redis
    config.update(
        worker_hijack_root_logger=True,
        worker_redirect_stdouts=False,
    )
    app.conf.update(config)
    return app


app = make_app(Settings.from_env())

_reaper = None


@signals.worker_ready.connect
def _start_reaper(sender: object = None, **_kwargs: object) -> None:
    """One reaper per worker, in the main process (worker_ready never fires in children);
    it reports the pool's slots, the capacity the dispatcher fills (``service.dispatch``)."""
    global _reaper
    from worker.reaper import Reaper
    from worker.runtime import runtime

    concurrency = getattr(getattr(sender, "controller", None), "concurrency", None)
    _reaper = Reaper(runtime(), slots=int(concurrency or 1))
    _reaper.start()


@signals.celeryd_init.connect
def _remember_processes(options: dict | None = None, **_kwargs: object) -> None:
    """Before the pool forks: how many children share this host's cores (worker.blas)."""
    from worker import blas

    blas.remember_processes(int((options or {}).get("concurrency") or 0) or None)


@signals.worker_process_init.connect
def _limit_blas(**_kwargs: object) -> None:
    """Each pool child takes max(1, cores // children) BLAS threads."""
    from worker import blas

    blas.limit_in_child()


@signals.worker_shutting_down.connect
def _forward_warm_shutdown(how: str = "Warm", **_kwargs: object) -> None:
    if _reaper is not None:
        _reaper.stop()
    if how == "Warm":
        shutdown.request_stop()
