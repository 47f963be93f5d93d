"""The training task: thin, takes only a job id, idempotent (the runner claims first)."""

from __future__ import annotations

from celery.exceptions import Reject

from service.queue import TRAIN_TASK
from worker import shutdown
from worker.celery_app import app
from worker.runner import run_job
from worker.timelimit import soft_limit_as_flag


@app.task(name=TRAIN_TASK, ignore_result=True)
def train(job_id: str) -> str:
    """Run one delivery of a job; returns the outcome (logged by Celery)."""
    if shutdown.pending():
        # This worker is stopping: give the message back for another worker.
        raise Reject("worker is shutting down", requeue=True)
    with soft_limit_as_flag() as time_limit:
        return run_job(job_id, stop=shutdown.WarmShutdown(), time_limit=time_limit)
