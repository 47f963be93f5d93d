"""The bodies of "why is my network not learning": a job's diagnostics and the
learning-rate finder (``POST /lr-finder``). docs/diagnostics.md defines every number.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, Field

from service.schemas.names import FindingCode, Severity
from service.schemas.spec import JobSpec

# The engine's ceiling (worker.nn.lr_finder.MAX_STEPS; tests/service/test_lr_finder_api.py
# holds them equal). The configured ``lr_finder_steps`` limit is usually lower.
MAX_STEPS = 1000


class FindingOut(BaseModel):
    code: FindingCode
    severity: Severity = Field(description="error | warning | info (a healthy run: info at most)")
    layer: int | None = Field(
        description="Weight layer k (1 = first hidden, the last = output), as in grad_norms."
    )
    epoch: int | None
    message: str = Field(description="What happened and what to try, in plain words.")
    evidence: dict[str, Any] = Field(description="The numbers behind it and the threshold.")


class DiagnosticsOut(BaseModel):
    job_id: str
    status: str
    findings: list[FindingOut] = Field(description="Most severe first.")
    epochs: int = Field(description="Curve points the job has stored.")
    epochs_read: int = Field(
        description="Points the rules read: all of them up to the diagnostics_points limit, "
        "else the first and last epochs, the loss minima and evenly spaced epochs between."
    )


class LrFinderRequest(JobSpec):
    """A job spec (validated like ``POST /jobs``) and the range to sweep."""

    min_lr: float = Field(default=1e-6, gt=0.0, le=1e3, allow_inf_nan=False)
    max_lr: float = Field(default=1.0, gt=0.0, le=1e3, allow_inf_nan=False)
    steps: int = Field(
        default=100,
        ge=2,
        le=MAX_STEPS,
        description="Mini-batch steps; at most the lr_finder_steps limit.",
    )

    def spec(self) -> JobSpec:
        return JobSpec.model_validate(self.model_dump(exclude={"min_lr", "max_lr", "steps"}))


class LrPoint(BaseModel):
    learning_rate: float
    loss: float = Field(description="Smoothed (bias-corrected moving average).")
    raw_loss: float = Field(description="The mini-batch's data loss before the step.")


class LrAtMinimum(BaseModel):
    learning_rate: float
    loss: float


class LrFinderOut(BaseModel):
    points: list[LrPoint]
    suggested_learning_rate: float | None = Field(
        description="The rate at the smoothed loss's minimum / 10 (null: no finite loss)."
    )
    min_loss: LrAtMinimum | None
    rule: str
    stop_reason: Literal["steps", "diverged", "non_finite"] = Field(
        description='"steps": the range ran out (if the loss still fell, try a higher max_lr).'
    )
    steps_run: int
    min_lr: float
    max_lr: float
    steps: int
    smoothing: float
    examples: int = Field(description="Training examples used (never the validation split).")
    batch_size: int
