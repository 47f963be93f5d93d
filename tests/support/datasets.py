"""Datasets for tests: read back the arrays the API stored."""

from __future__ import annotations

from sqlalchemy.orm import Session

from service.dataset_arrays import DatasetArrays
from service.dataset_files import unpack
from service.models import Dataset, DatasetBlob


def stored_arrays(session: Session, dataset: Dataset) -> DatasetArrays:
    """The arrays of a stored dataset, as a worker would load them."""
    blob = session.get(DatasetBlob, dataset.sha256)
    assert blob is not None, f"dataset {dataset.id} has no stored data"
    return unpack(blob.data, dataset.task, dataset.classes)
