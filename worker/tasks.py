"""The training task: thin, takes only a job id, idempotent (the runner claims first)."""

from __future__ import annotations

from celery.exceptions import Reject

from service import webhooks
from service.queue import DELIVER_TASK, TRAIN_TASK
from worker import shutdown
from worker.celery_app import app
from worker.runner import run_job
from worker.runtime import runtime
from worker.timelimit import soft_limit_as_flag


@app.task(name=TRAIN_TASK, ignore_result=True)
def train(job_id: str) -> str:
    """Run one delivery of a job; returns the outcome (logged by Celery)."""
    if shutdown.pending():
        # This worker is stopping: give the message back for another worker.
        raise Reject("worker is shutting down", requeue=True)
    with soft_limit_as_flag() as time_limit:
        return run_job(job_id, stop=shutdown.WarmShutdown(), time_limit=time_limit)


@app.task(name=DELIVER_TASK, ignore_result=True)
def deliver_webhook(delivery_id: str) -> str:
    """One attempt of one webhook delivery (``service.webhooks.deliver``); the next one,
    after its back-off, is sent by the reaper's relay."""
    rt = runtime()
    return webhooks.deliver(rt.factory, delivery_id, rt.settings)
