"""Comparing a batch's jobs (docs/compare.md): the band of a metric across them, the job
nearest a value, and which parameter mattered."""

from __future__ import annotations

import dataclasses
from typing import Any

from pydantic import BaseModel, Field

from service.importance import METHOD, Importance
from service.schemas.responses.batches import Best


class RankedJob(BaseModel):
    id: str
    index: int | None
    name: str
    status: str
    params: dict[str, Any] = Field(description="This job's values of the varied paths.")
    value: float | None = Field(description="Its value of the metric (latest, or at the epoch).")


class BandSeries(BaseModel):
    epoch: list[int] = Field(description="At most `points` epochs, evenly spaced, both ends kept.")
    count: list[int] = Field(description="How many jobs have a value at that epoch.")
    p10: list[float | None]
    p25: list[float | None]
    p50: list[float | None] = Field(description="The median across the jobs.")
    p75: list[float | None]
    p90: list[float | None]


class BatchBand(BaseModel):
    metric: str
    mode: str
    metric_defaulted: bool = Field(description="No metric was asked for (as in the summary).")
    jobs: int = Field(description="Jobs in the batch.")
    ranked: int = Field(description="Jobs with a value of the metric.")
    quantiles: list[float]
    band: BandSeries = Field(description="Quantiles of the metric across the jobs, per epoch.")
    top: list[RankedJob] = Field(
        description="The k best by the latest value, best first (any status), and the best "
        "succeeded job if it is not among them."
    )
    best: Best | None = Field(description="The succeeded job with the best final metric.")


class NearestJob(BaseModel):
    metric: str
    epoch: int
    value: float
    job: RankedJob | None = Field(
        description="The job whose value at the epoch is nearest (log scale for losses)."
    )


class ParamImportanceOut(BaseModel):
    name: str = Field(description="A varied parameter's dotted path.")
    importance: float = Field(description="Its share of what the parameters explain (sums to 1).")
    omega_squared: float = Field(
        description="The share of the metric's rank variance it explains on its own (ω², ≥ 0)."
    )
    groups: int = Field(description="Distinct values, or quantile bins, the trials fell into.")


class ImportanceOut(BaseModel):
    metric: str
    mode: str
    reduce: str
    method: str = Field(description="binned-omega-squared (docs/compare.md)")
    n_trials: int = Field(description="Finished jobs with a value of the metric.")
    explained: float = Field(description="Σ ω² (≤ 1): how much first-order effects explain.")
    params: list[ParamImportanceOut] = Field(description="Most important first.")
    warnings: list[str] = Field(description="When the answer is thin or says nothing.")


def importance_dict(metric: str, mode: str, reduce: str, found: Importance) -> dict[str, Any]:
    return {
        "metric": metric,
        "mode": mode,
        "reduce": reduce,
        "method": METHOD,
        "n_trials": found.n_trials,
        "explained": found.explained,
        "params": [dataclasses.asdict(p) for p in found.params],
        "warnings": found.warnings,
    }
