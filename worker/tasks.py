"""The training task: thin, takes only job ids (one, or a group of tiny jobs), idempotent
(the runner claims first)."""

from __future__ import annotations

import logging

from celery.exceptions import Reject
from sqlalchemy.exc import SQLAlchemyError

from service import webhooks
from service.queue import DELIVER_TASK, TRAIN_TASK
from worker import shutdown
from worker.celery_app import app
from worker.groups import run_group
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
def train(job_id: str, *group: str) -> str:
    """Run one delivery of a job, or of a group of tiny jobs (``job_id`` and ``group``:
    ``worker.groups``); returns the outcome(s) (logged by Celery)."""
    if shutdown.pending():
        # This worker is stopping: give the message back for another worker.
        log.info("job=%s message given back: this worker is shutting down", job_id)
        raise Reject(SHUTTING_DOWN, requeue=True)
    with soft_limit_as_flag() as time_limit:
        if group:
            jobs = [job_id, *group]
            ran = run_group(jobs, stop=shutdown.WarmShutdown(), time_limit=time_limit)
        else:
            ran = [run_delivery(job_id, stop=shutdown.WarmShutdown(), time_limit=time_limit)]
    if any(one.webhooks for one in ran):  # a tenant without webhooks has none to relay
        try:
            relay_webhooks(runtime())  # the run's events leave now, not at the next pass
        except SQLAlchemyError:
            log.warning(
                "job=%s webhook relay failed; the reaper relays later", job_id, exc_info=True
            )
    return ",".join(one.outcome for one in ran)


@app.task(name=DELIVER_TASK, ignore_result=True)
def deliver_webhook(delivery_id: str) -> str:
    """One attempt of one webhook delivery (``service.webhooks.deliver``); the next one,
    after its back-off, is sent by the reaper's relay."""
    rt = runtime()
    return webhooks.deliver(rt.factory, delivery_id, rt.settings)
