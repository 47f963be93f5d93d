"""Load a job's dataset: a stored blob (cached on local disk by sha256), a generator, or inline.

Stored datasets live in the database so that workers on any host can read them; each
host keeps a copy under ``$DELTAFLOW_DATA_DIR/cache/<sha256>.npz`` so a sweep of many
jobs over one dataset reads the blob once. The cache is content-addressed and written
atomically (temporary file + rename), so concurrent pool children cannot see a torn file.
"""

from __future__ import annotations

import logging
import os
import tempfile
from pathlib import Path
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from service.config import Settings
from service.dataset_arrays import DatasetArrays
from service.dataset_files import sha256_hex, unpack
from service.datasets import spec_arrays
from service.db import transaction
from service.models import Dataset, DatasetBlob

log = logging.getLogger(__name__)


class DatasetUnavailable(Exception):
    """The job's dataset cannot be loaded (deleted, corrupt, or invalid); the job fails."""


def load_dataset(
    spec: dict[str, Any],
    tenant_id: str,
    factory: sessionmaker[Session],
    settings: Settings,
) -> DatasetArrays:
    """The arrays a job's dataset spec names (X float64 (n, d); y as in DatasetArrays)."""
    if "id" in spec:
        return _load_stored(spec["id"], tenant_id, factory, settings)
    try:
        return spec_arrays(spec, settings.limits)
    except Exception as exc:  # pydantic's ValidationError, service.problems.Invalid: a bad spec
        kind = "generator spec" if "generator" in spec else "inline dataset"
        raise DatasetUnavailable(f"invalid {kind}: {exc}") from exc


def cache_dir(settings: Settings) -> Path:
    return Path(settings.data_dir) / "cache"


def _load_stored(
    dataset_id: str, tenant_id: str, factory: sessionmaker[Session], settings: Settings
) -> DatasetArrays:
    with transaction(factory) as session:
        row = session.execute(
            select(Dataset.sha256, Dataset.task, Dataset.classes).where(
                Dataset.id == dataset_id, Dataset.tenant_id == tenant_id
            )
        ).one_or_none()
    if row is None:
        raise DatasetUnavailable(f"dataset {dataset_id} does not exist (was it deleted?)")
    data = _cached_blob(row.sha256, factory, settings)
    return unpack(data, row.task, row.classes)


def _cached_blob(digest: str, factory: sessionmaker[Session], settings: Settings) -> bytes:
    path = cache_dir(settings) / f"{digest}.npz"
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        pass
    else:
        if sha256_hex(data) == digest:
            return data
        log.warning("dataset cache entry corrupt sha256=%s; reloading", digest)
    with transaction(factory) as session:
        data = session.execute(
            select(DatasetBlob.data).where(DatasetBlob.sha256 == digest)
        ).scalar_one_or_none()
    if data is None:
        raise DatasetUnavailable(f"dataset blob {digest[:12]}… is missing from the database")
    if sha256_hex(data) != digest:
        raise DatasetUnavailable(f"dataset blob {digest[:12]}… does not match its hash")
    _write_atomically(path, data)
    return data


def _write_atomically(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".partial-", suffix=".npz")
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
