"""The training task: thin, takes only a job id, idempotent (the runner claims first)."""

from __future__ import annotations

import logging

from celery.exceptions import Reject
from sqlalchemy.exc import SQLAlchemyError

from service import webhooks
from service.queue import DELIVER_TASK, TRAIN_TASK
from worker import shutdown
from worker.celery_app import app
from worker.reaper import relay_webhooks
from worker.runner import run_delivery
from worker.runtime import runtime
from worker.timelimit import soft_limit_as_flag

log = logging.getLogger(__name__)

SHUTTING_DOWN = "worker is shutting down"


class QuietHandBack(logging.Filter):
    """Celery logs every rejected message at WARNING with its traceback. A message given
    back during a warm shutdown is expected (often the job this worker just released):
    the task logs one INFO line for it instead."""

    def filter(self, record: logging.LogRecord) -> bool:
        error = record.exc_info[1] if record.exc_info else None
        return not (isinstance(error, Reject) and error.args[:1] == (SHUTTING_DOWN,))


logging.getLogger("celery.app.trace").addFilter(QuietHandBack())


@app.task(name=TRAIN_TASK, ignore_result=True)
def train(job_id: str) -> str:
    """Run one delivery of a job; returns the outcome (logged by Celery)."""
    if shutdown.pending():
        # This worker is stopping: give the message back for another worker.
        log.info("job=%s message given back: this worker is shutting down", job_id)
        raise Reject(SHUTTING_DOWN, requeue=True)
    with soft_limit_as_flag() as time_limit:
        ran = run_delivery(job_id, stop=shutdown.WarmShutdown(), time_limit=time_limit)
    if ran.webhooks:  # a tenant without webhooks has none to relay: no transaction for it
        try:
            relay_webhooks(runtime())  # the run's events leave now, not at the next pass
        except SQLAlchemyError:
            log.warning(
                "job=%s webhook relay failed; the reaper relays later", job_id, exc_info=True
            )
    return ran.outcome


@app.task(name=DELIVER_TASK, ignore_result=True)
def deliver_webhook(delivery_id: str) -> str:
    """One attempt of one webhook delivery (``service.webhooks.deliver``); the next one,
    after its back-off, is sent by the reaper's relay."""
    rt = runtime()
    return webhooks.deliver(rt.factory, delivery_id, rt.settings)
