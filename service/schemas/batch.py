"""The body of ``POST /batches`` and the specs of batch schedulers.

``BatchSubmit`` parses ``base`` and ``jobs`` as plain objects: each expanded spec is
validated afterwards as a ``JobSpec``, its errors naming the job. ``BatchRequest`` is the
same body as the OpenAPI document shows it, with ``base`` and ``jobs`` as job specs.
A scheduler is a spec here (``AshaSpec``) and a class in ``service.schedulers``.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from service.schemas.names import Metric, Mode, SchedulerName
from service.schemas.spec import JobSpec, JobSubmit


class AshaSpec(BaseModel):
    """Early stopping by asynchronous successive halving (ASHA).

    Rungs sit at ``min_epochs * reduction_factor**k`` epochs. A running job that reached a
    rung is stopped once at least ``reduction_factor`` jobs reached that rung and it is not
    among the best ``max(1, n // reduction_factor)`` of those ``n`` by ``metric`` at that
    epoch. Stopped jobs end ``cancelled``; the batch summary says which rung stopped them.
    """

    model_config = ConfigDict(extra="forbid")

    name: SchedulerName
    metric: Metric = "val_loss"
    mode: Mode | None = Field(
        default=None, description="Default: min for losses, max for accuracies."
    )
    min_epochs: int = Field(default=10, ge=1, description="The first rung.")
    reduction_factor: int = Field(default=3, ge=2, le=64, description="η: keep 1/η per rung.")


class BatchSubmit(BaseModel):
    """The body of ``POST /batches``: a ``base`` spec with a ``grid`` or ``random`` sweep,
    or an explicit ``jobs`` list. Expanded specs are validated one by one afterwards."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=200)
    base: dict[str, Any] | None = Field(
        default=None, description="A job spec (network, dataset, training) the sweep writes into."
    )
    grid: dict[str, list[Any]] | None = Field(
        default=None,
        description="Dotted path -> values; the batch is their cartesian product, e.g. "
        "{'training.optimizer.learning_rate': [0.01, 0.1], 'network.layers.0.units': [4, 8]}.",
    )
    random: dict[str, dict[str, Any]] | None = Field(
        default=None,
        description="Dotted path -> one of {'uniform': [a, b]}, {'loguniform': [a, b]}, "
        "{'randint': [lo, hi]} (both included), {'choice': [v, ...]}.",
    )
    samples: int | None = Field(default=None, ge=1, description="How many random draws.")
    seed: int | None = Field(
        default=None, ge=0, le=2**32 - 1, description="Seed of the draws (chosen if omitted)."
    )
    scheduler: AshaSpec | None = Field(
        default=None, description="Stop jobs that fall behind (successive halving)."
    )
    # Plain dicts at parse time: each job is validated later, its errors naming its index.
    jobs: list[dict[str, Any]] | None = Field(
        default=None, description="Explicit job specs, each like the body of POST /jobs."
    )


class BatchRequest(BatchSubmit):
    """The documented shape of the POST body: ``BatchSubmit`` parses ``base`` and ``jobs``
    as plain objects (each expanded spec is validated afterwards, its errors naming the
    job), but they are job specs."""

    # Narrower than the parsed types on purpose: the document shows what the parts must be.
    base: JobSpec | None = Field(  # type: ignore[assignment]
        default=None, description="A job spec (network, dataset, training) the sweep writes into."
    )
    jobs: list[JobSubmit] | None = Field(  # type: ignore[assignment]
        default=None, description="Explicit job specs, each like the body of POST /jobs."
    )
