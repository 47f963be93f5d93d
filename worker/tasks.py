"""The training task: thin, takes only a job id, idempotent (the runner claims first)."""

from __future__ import annotations

from service.queue import TRAIN_TASK
from worker.celery_app import app
from worker.runner import run_job
from worker.shutdown import stop_on_warm_shutdown


@app.task(name=TRAIN_TASK, ignore_result=True)
def train(job_id: str) -> str:
    """Run one delivery of a job; returns the outcome (logged by Celery)."""
    with stop_on_warm_shutdown() as stop:
        return run_job(job_id, stop=stop)
