"""Every vocabulary of the service, declared once: what a status, queue, metric, generator,
activation, loss, init scheme, optimizer, schedule or scheduler may be called.

The spec models, the database defaults, the OpenAPI enums and ``GET /api/v1/meta`` (which
the dashboard reads) all take their names from here; ``tests/service/test_names.py``
checks them against the engine's registries and the generators.
"""

from __future__ import annotations

import enum
from typing import Literal, get_args


class JobStatus(enum.StrEnum):
    queued = "queued"
    running = "running"
    cancelling = "cancelling"
    succeeded = "succeeded"
    failed = "failed"
    cancelled = "cancelled"

    @property
    def finished(self) -> bool:
        return self in FINISHED


FINISHED = frozenset({JobStatus.succeeded, JobStatus.failed, JobStatus.cancelled})
UNFINISHED = frozenset({JobStatus.queued, JobStatus.running, JobStatus.cancelling})
# The statuses in which a run owns the job: its lease counts and its writes are fenced.
ACTIVE = (JobStatus.running.value, JobStatus.cancelling.value)
StatusName = Literal["queued", "running", "cancelling", "succeeded", "failed", "cancelled"]


class Queue(enum.StrEnum):
    """Celery queues: single jobs never wait behind a large batch."""

    interactive = "interactive"
    batch = "batch"


# The curve metrics a batch ranks its jobs by (and a scheduler watches).
Metric = Literal["train_loss", "val_loss", "train_accuracy", "val_accuracy"]
METRICS: tuple[str, ...] = get_args(Metric)
Mode = Literal["min", "max"]
MODES: tuple[str, ...] = get_args(Mode)
# What a job's summary keeps of each metric (``jobs.summary``; service.summaries), and
# which of them ranks a batch's jobs (``reduce``).
SummaryStat = Literal["min", "max", "last", "argmin_epoch", "argmax_epoch"]
SUMMARY_STATS: tuple[str, ...] = get_args(SummaryStat)
Reduce = Literal["last", "min", "max"]

Task = Literal["classification", "regression"]
TASKS: tuple[str, ...] = get_args(Task)
Dtype = Literal["float32", "float64"]

GeneratorName = Literal["xor", "circles", "moons", "spirals", "gaussians", "plane", "sine"]
GENERATORS: tuple[str, ...] = get_args(GeneratorName)

HiddenActivation = Literal["sigmoid", "tanh", "relu", "leaky_relu", "identity"]
OutputActivation = Literal["sigmoid", "tanh", "relu", "leaky_relu", "identity", "softmax"]
LossName = Literal["binary_cross_entropy", "cross_entropy", "mse"]
InitSchemeName = Literal["ng", "glorot", "he", "zeros"]
OptimizerName = Literal["gd", "sgd", "momentum", "nesterov", "adam"]
ScheduleName = Literal["constant", "step", "inverse_scaling", "plateau"]
SCHEDULES: tuple[str, ...] = get_args(ScheduleName)

SchedulerName = Literal["asha", "hyperband", "median", "pbt"]
SearchName = Literal["tpe"]
# How a batch's jobs are made: given up front (grid, random, jobs) or as trials finish (tpe).
BatchKind = Literal["grid", "random", "jobs", "tpe"]
BATCH_KINDS: tuple[str, ...] = get_args(BatchKind)
# Where a batch job's spec came from (``jobs.origin.kind``); "pbt" once it exploited another.
OriginKind = Literal["grid", "random", "jobs", "tpe", "pbt"]
# What a scheduler decides at a trial's report (``trial_decisions.action``).
Action = Literal["continue", "stop", "exploit"]
# Distributions of a random sweep: {"uniform": [a, b]}, {"loguniform": [a, b]}, ...
DISTRIBUTIONS = ("uniform", "loguniform", "choice", "randint")

# What a job's diagnostics can find (``worker.nn.diagnostics.CODES``) and how bad it is.
FindingCode = Literal[
    "diverged",
    "exploding_gradients",
    "vanishing_gradients",
    "dead_relu",
    "saturated_units",
    "learning_rate_too_high",
    "learning_rate_too_low",
    "overfitting",
    "underfitting",
]
Severity = Literal["error", "warning", "info"]

# ``jobs.error.type`` of a failed job.
JobErrorType = Literal[
    "non_finite",
    "time_limit",
    "attempts_exhausted",
    "gradient_check_failed",
    "dataset",
    "memory_limit",
    "internal",
]

# Events a webhook can subscribe to (service.webhooks); ``webhook.test`` is sent only by
# ``POST /webhooks/{id}/test``.
WebhookEventName = Literal["job.succeeded", "job.failed", "job.cancelled", "batch.completed"]
WEBHOOK_EVENTS: tuple[str, ...] = get_args(WebhookEventName)
WEBHOOK_TEST_EVENT = "webhook.test"
