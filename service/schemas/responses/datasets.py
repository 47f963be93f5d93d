"""A dataset on the wire, and a page of them."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field

from service.models import Dataset
from service.schemas.responses.wire import fields_of
from service.timeutil import iso


class DatasetOut(BaseModel):
    id: str
    name: str
    task: str = Field(description="classification | regression")
    n_samples: int
    n_features: int
    n_outputs: int
    classes: list[int | str | float] | None = Field(description="Original labels, index order.")
    sha256: str = Field(description="Content address of the stored arrays (NPZ).")
    size_bytes: int
    created_at: str


class DatasetList(BaseModel):
    items: list[DatasetOut]
    next_cursor: str | None


def dataset_dict(dataset: Dataset) -> dict[str, Any]:
    return fields_of(DatasetOut, dataset, created_at=iso(dataset.created_at))


class DatasetPointsOut(BaseModel):
    """A bounded, deterministic sample of a dataset's points (``service.dataset_points``)."""

    dataset_id: str
    task: str = Field(description="classification | regression")
    classes: list[int | str | float] | None = Field(description="Original labels, index order.")
    columns: list[int] = Field(description="The feature indices of X's columns, in order.")
    X: list[list[float]] = Field(description="The sampled rows' features, as stored (raw).")
    y: list[int | str | float] | list[list[float]] = Field(
        description="Each sampled row's label (classification) or target(s) (regression)."
    )
    total: int = Field(description="Rows in the dataset.")
    sampled: bool = Field(description="Fewer rows than the dataset holds were returned.")
