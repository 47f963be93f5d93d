"""Curve answers: one job's curve, and a batch's curves (a cursor over every job's)."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field

from service.schemas.records import CurvePointOut

CURVE_COLUMNS = Field(
    default=None,
    description="With format=columns instead of points: {epoch: [...], <field>: [...]}.",
)


class CurveOut(BaseModel):
    job_id: str
    status: str
    points: list[CurvePointOut] | None = Field(
        default=None, description="In epoch order (absent with format=columns)."
    )
    columns: dict[str, list[Any]] | None = CURVE_COLUMNS
    next_since: int = Field(description="Pass as ?since= to get only newer points.")
    complete: bool = Field(description="The job is finished and no points remain after next_since.")


class JobCurve(BaseModel):
    id: str
    status: str
    points: list[CurvePointOut] | None = Field(
        default=None, description="Only epochs after the cursor, in order."
    )
    columns: dict[str, list[Any]] | None = CURVE_COLUMNS


class BatchCurves(BaseModel):
    jobs: list[JobCurve] = Field(description="Every job of the batch, in batch order.")
    next_cursor: str = Field(description="Opaque: one last-seen epoch per job.")
    truncated: bool = Field(description="More points are already stored: ask again at once.")
    complete: bool = Field(description="Every job ended and every point was returned.")
