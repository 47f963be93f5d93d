"""The body of ``POST /batches`` and the specs of batch schedulers.

``BatchSubmit`` parses ``base`` and ``jobs`` as plain objects: each expanded spec is
validated afterwards as a ``JobSpec``, its errors naming the job. ``BatchRequest`` is the
same body as the OpenAPI document shows it, with ``base`` and ``jobs`` as job specs.
A scheduler is a spec here (``AshaSpec``, ...) and a class in ``service.schedulers``; the
TPE search is ``TpeSearch`` here and ``service.tpe`` with ``service.searches``.
"""

from __future__ import annotations

import math
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from service.schemas.names import Metric, Mode, SearchName
from service.schemas.spec import JobSpec, JobSubmit


class SchedulerBase(BaseModel):
    """What every scheduler watches: one curve metric, lower or higher being better."""

    model_config = ConfigDict(extra="forbid")

    metric: Metric = "val_loss"
    mode: Mode | None = Field(
        default=None, description="Default: min for losses, max for accuracies."
    )


class AshaSpec(SchedulerBase):
    """Early stopping by asynchronous successive halving (ASHA).

    Rungs sit at ``min_epochs * reduction_factor**k`` epochs. When a trial reaches a rung
    it is stopped if at least ``reduction_factor`` trials reached that rung and it is not
    among the best ``max(1, n // reduction_factor)`` of those ``n`` by ``metric`` at that
    epoch. Stopped jobs end ``cancelled``; the batch summary says which rung stopped them.
    """

    name: Literal["asha"]
    min_epochs: int = Field(default=10, ge=1, description="The first rung.")
    reduction_factor: int = Field(default=3, ge=2, le=64, description="η: keep 1/η per rung.")


class HyperbandSpec(SchedulerBase):
    """Hyperband: brackets of successive halving, each starting at a different rung.

    With ``s_max = floor(log_η(max_epochs / min_epochs))``, bracket ``s`` (0..s_max) has
    rungs at ``min_epochs * η**j`` for ``s_max - s <= j < s_max``; bracket 0 never stops a
    trial. Trials are dealt to brackets in Hyperband's proportions
    ``ceil((s_max + 1) / (s + 1) * η**s)``, in an order shuffled by ``seed`` (docs/sweeps.md).
    """

    name: Literal["hyperband"]
    min_epochs: int = Field(default=10, ge=1, description="The first rung of the boldest bracket.")
    max_epochs: int = Field(default=270, ge=2, description="R: the most epochs a trial runs to.")
    reduction_factor: int = Field(default=3, ge=2, le=64, description="η: keep 1/η per rung.")
    seed: int | None = Field(
        default=None,
        ge=0,
        le=2**32 - 1,
        description="Deals trials to brackets (chosen if omitted).",
    )


class MedianSpec(SchedulerBase):
    """Median stopping (Golovin et al., 2017): every ``interval_epochs`` after
    ``grace_epochs``, stop a trial whose best value so far is worse than the median of the
    other trials' running averages at the same epoch (once ``min_trials`` others reached it)."""

    name: Literal["median"]
    grace_epochs: int = Field(default=10, ge=1, description="No trial is judged before this.")
    min_trials: int = Field(default=3, ge=1, description="Others that must have reached the epoch.")
    interval_epochs: int = Field(default=5, ge=1, description="How often a trial is judged.")


class PbtSpec(SchedulerBase):
    """Population based training: every ``interval_epochs``, a trial in the bottom
    ``quantile`` copies the latest checkpoint of one in the top ``quantile`` and goes on
    from it with the varied training numbers perturbed (×factor) or resampled."""

    name: Literal["pbt"]
    interval_epochs: int = Field(default=10, ge=1, description="Epochs between two decisions.")
    quantile: float = Field(default=0.25, gt=0, le=0.5, description="Bottom and top fraction.")
    resample_probability: float = Field(
        default=0.25, ge=0, le=1, description="Per value: draw afresh instead of perturbing."
    )
    perturbation_factors: list[float] = Field(
        default=[0.8, 1.2],
        min_length=1,
        max_length=8,
        description="A perturbation multiplies by one.",
    )
    seed: int | None = Field(
        default=None, ge=0, le=2**32 - 1, description="Drives donors and perturbations."
    )

    @field_validator("perturbation_factors")
    @classmethod
    def _positive(cls, factors: list[float]) -> list[float]:
        if not all(math.isfinite(f) and f > 0 for f in factors):
            raise ValueError("perturbation factors must be positive numbers")
        return factors


SchedulerSpec = Annotated[
    AshaSpec | HyperbandSpec | MedianSpec | PbtSpec, Field(discriminator="name")
]


class TpeSearch(BaseModel):
    """A sequential search: trials are drawn by the tree-structured Parzen estimator from
    every result so far, ``max_concurrent`` at a time, until ``trials`` were created."""

    model_config = ConfigDict(extra="forbid")

    name: SearchName
    space: dict[str, dict[str, Any]] = Field(
        description="Dotted path -> one of {'uniform': [a, b]}, {'loguniform': [a, b]}, "
        "{'randint': [lo, hi]} (both included), {'choice': [v, ...]}."
    )
    trials: int = Field(ge=1, description="How many trials in all.")
    max_concurrent: int = Field(default=1, ge=1, description="Trials in flight at once.")
    seed: int | None = Field(
        default=None, ge=0, le=2**32 - 1, description="Seed of the draws (chosen if omitted)."
    )
    metric: Metric = "val_loss"
    mode: Mode | None = Field(
        default=None, description="Default: min for losses, max for accuracies."
    )
    startup_trials: int = Field(
        default=10, ge=1, le=1000, description="Random draws before the estimator takes over."
    )
    candidates: int = Field(
        default=24, ge=1, le=1000, description="Draws from l(x) scored by l(x)/g(x) per value."
    )


class BatchSubmit(BaseModel):
    """The body of ``POST /batches``: a ``base`` spec with a ``grid``, ``random`` or
    ``search`` (TPE) sweep, or an explicit ``jobs`` list. Expanded specs are validated one
    by one afterwards."""

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
    scheduler: SchedulerSpec | None = Field(
        default=None,
        description="At each report of a trial: continue, stop it (asha, hyperband, median) "
        "or have it exploit a better one (pbt).",
    )
    search: TpeSearch | None = Field(
        default=None, description="Instead of grid, random or jobs: trials drawn by TPE."
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
