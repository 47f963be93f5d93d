"""Dataset commands and queries: store (content-addressed), read, list, delete.

A dataset's arrays live in ``dataset_blobs`` keyed by the sha256 of the packed bytes, so two
uploads of the same data share one blob and any worker host can load (and cache) it by hash.
Reading uploads is ``service.dataset_files``; validating arrays ``service.dataset_arrays``.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from typing import Any

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from service import generators, quotas
from service.config import Limits
from service.cursors import paginate
from service.dataset_arrays import DatasetArrays, build_arrays, infer_task
from service.dataset_files import pack, sha256_hex, unpack
from service.db import dialect_insert
from service.models import Dataset, DatasetBlob, Job, new_id
from service.problems import Conflict, NotFound
from service.quotas import QuotaLimits
from service.schemas.names import UNFINISHED
from service.timeutil import utcnow


def create_dataset(
    session: Session,
    tenant_id: str,
    name: str,
    arrays: DatasetArrays,
    quota: QuotaLimits | None = None,
) -> Dataset:
    """Store a dataset (and its blob unless the same bytes are stored already). Commits.

    Over the tenant's ``max_storage_bytes`` (``service.quotas``): 429, nothing stored."""
    data = pack(arrays)
    try:
        dataset = _add(session, tenant_id, name, arrays, data, sha256_hex(data), quota)
        session.commit()
    except BaseException:
        session.rollback()
        raise
    return dataset


def store_inline(
    session: Session, tenant_id: str, arrays: DatasetArrays, quota: QuotaLimits | None = None
) -> Dataset:
    """The tenant's dataset of a job's inline X and y: the one already stored with the same
    bytes, task and classes, else a new one (named ``inline <sha256[:12]>``). Flushes, never
    commits: a batch stores its jobs' data with them or not at all (issue 11: a 1000-job
    sweep over inline data stores it once). A new one is counted against ``quota``'s
    ``max_storage_bytes`` like an upload (429, the caller rolls back)."""
    data = pack(arrays)
    digest = sha256_hex(data)
    candidates = session.scalars(
        select(Dataset)
        .where(
            Dataset.tenant_id == tenant_id,
            Dataset.sha256 == digest,
            Dataset.task == arrays.task,
        )
        .order_by(Dataset.created_at, Dataset.id)
    )
    for existing in candidates:
        if _same_classes(existing.classes, arrays.classes):
            return existing
    return _add_inline(session, tenant_id, arrays, data, digest, quota)


def content_key(digest: str, task: str, classes: Sequence[Any] | None) -> str:
    """What makes two inline datasets one: their bytes, task and classes, type for type
    (``0`` is not ``"0"``, nor ``1`` ``True``: JSON writes each differently)."""
    typed = json.dumps([digest, task, classes], separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(typed.encode()).hexdigest()


def _add_inline(
    session: Session,
    tenant_id: str,
    arrays: DatasetArrays,
    data: bytes,
    digest: str,
    quota: QuotaLimits | None,
) -> Dataset:
    """Insert the inline dataset unless a concurrent submit of the same data just did.

    ``content_key`` is unique per tenant (migration 0013), and the insert does nothing on a
    conflict: on PostgreSQL it waits for the other transaction, and once that committed
    its row is read here and shared — two first submits at once store one dataset. Only a
    dataset inserted here is admitted against ``quota`` (429, the caller rolls back)."""
    if session.get(DatasetBlob, digest) is None:
        _insert_blob_once(session, digest, data)
    key = content_key(digest, arrays.task, arrays.classes)
    values = {
        "id": new_id(),
        "tenant_id": tenant_id,
        "created_at": utcnow(),
        "name": f"inline {digest[:12]}",
        "task": arrays.task,
        "n_samples": arrays.n_samples,
        "n_features": arrays.n_features,
        "n_outputs": arrays.n_outputs,
        "classes": arrays.classes,
        "sha256": digest,
        "size_bytes": len(data),
        "content_key": key,
    }
    insert = dialect_insert(session)(Dataset).values(**values)
    inserted = session.scalar(
        insert.on_conflict_do_nothing(index_elements=["tenant_id", "content_key"]).returning(
            Dataset.id
        )
    )
    if inserted is None:
        winner = session.scalar(
            select(Dataset).where(Dataset.tenant_id == tenant_id, Dataset.content_key == key)
        )
        if winner is None:  # the other submit rolled back after all: nothing to share
            raise Conflict("a concurrent request stored the same data and failed; retry")
        return winner
    if quota is not None:
        quotas.admit_storage(session, tenant_id, quota, added=len(data))
    dataset = session.get(Dataset, inserted)
    assert dataset is not None  # noqa: S101  (inserted just now, in this transaction)
    return dataset


def _add(
    session: Session,
    tenant_id: str,
    name: str,
    arrays: DatasetArrays,
    data: bytes,
    digest: str,
    quota: QuotaLimits | None,
) -> Dataset:
    """Add a dataset row (and its blob unless the same bytes are stored already), flushed and
    admitted against ``quota``'s ``max_storage_bytes``; the caller commits or rolls back."""
    if session.get(DatasetBlob, digest) is None:
        _insert_blob_once(session, digest, data)
    dataset = Dataset(
        tenant_id=tenant_id,
        name=name,
        task=arrays.task,
        n_samples=arrays.n_samples,
        n_features=arrays.n_features,
        n_outputs=arrays.n_outputs,
        classes=arrays.classes,
        sha256=digest,
        size_bytes=len(data),
    )
    session.add(dataset)
    session.flush()
    if quota is not None:
        quotas.admit_storage(session, tenant_id, quota, added=len(data))
    return dataset


def _same_classes(a: Sequence[Any] | None, b: Sequence[Any] | None) -> bool:
    """Class lists equal value for value and type for type (0 is not "0", nor 1 True)."""
    if a is None or b is None:
        return a is None and b is None
    return len(a) == len(b) and all(
        type(x) is type(y) and x == y for x, y in zip(a, b, strict=True)
    )


def _insert_blob_once(session: Session, digest: str, data: bytes) -> None:
    """Insert a blob unless a concurrent upload of the same bytes just did (no 500 on a race)."""
    stmt = dialect_insert(session)(DatasetBlob).values(
        sha256=digest, data=data, size_bytes=len(data), created_at=utcnow()
    )
    session.execute(stmt.on_conflict_do_nothing(index_elements=["sha256"]))


def get_dataset(session: Session, tenant_id: str, dataset_id: str) -> Dataset:
    """The tenant's dataset; another tenant's id is reported exactly like a missing one."""
    dataset = session.scalar(
        select(Dataset).where(Dataset.id == dataset_id, Dataset.tenant_id == tenant_id)
    )
    if dataset is None:
        raise NotFound(f"no dataset {dataset_id}")
    return dataset


def list_datasets(
    session: Session, tenant_id: str, limit: int | None, cursor: str | None, max_limit: int
) -> tuple[list[Dataset], str | None]:
    """A page of the tenant's datasets, newest first, and the cursor of the next page."""
    query = select(Dataset).where(Dataset.tenant_id == tenant_id)
    return paginate(session, query, Dataset, limit, cursor, max_limit)


def delete_dataset(session: Session, tenant_id: str, dataset_id: str) -> None:
    """Delete a dataset no unfinished job uses; drop its blob when no dataset references it.

    Finished jobs that trained on it stay, with their curves and models: their
    ``dataset_id`` is cleared (their spec still names it). Commits.
    """
    dataset = get_dataset(session, tenant_id, dataset_id)
    # Row-locked first (PostgreSQL), so a job inserted meanwhile, which holds a key-share
    # lock on this row until it commits, is counted below instead of failing its insert.
    session.execute(select(Dataset.id).where(Dataset.id == dataset.id).with_for_update())
    users = unfinished_users(session, tenant_id, dataset.id)
    if users:
        raise Conflict(
            f"dataset {dataset_id} is used by {users} unfinished job(s); "
            "wait for them or cancel them first"
        )
    session.execute(
        update(Job)
        .where(Job.dataset_id == dataset.id)
        .values(dataset_id=None)
        .execution_options(synchronize_session=False)
    )
    digest = dataset.sha256
    session.delete(dataset)
    session.flush()
    others = session.scalar(
        select(func.count()).select_from(Dataset).where(Dataset.sha256 == digest)
    )
    if not others:
        blob = session.get(DatasetBlob, digest)
        if blob is not None:
            session.delete(blob)
            session.flush()
    session.commit()


def unfinished_users(session: Session, tenant_id: str, dataset_id: str) -> int:
    """Queued, running or cancelling jobs that train or validate on the dataset."""
    unfinished = [status.value for status in UNFINISHED]
    rows = session.execute(
        select(Job.dataset_id, Job.spec).where(
            Job.tenant_id == tenant_id,
            Job.status.in_(unfinished),
            Job.dataset_id.is_not(None),
        )
    )
    return sum(1 for used, spec in rows if used == dataset_id or validation_id(spec) == dataset_id)


def validation_id(spec: Mapping[str, Any]) -> str | None:
    """The stored validation set a job spec names, if any."""
    validation = (spec.get("dataset") or {}).get("validation")
    return validation.get("id") if isinstance(validation, Mapping) else None


def spec_arrays(
    spec: Mapping[str, Any], limits: Limits, loc: Sequence[str | int] = ("dataset",)
) -> DatasetArrays:
    """The arrays a generated or inline dataset spec describes (a stored one is read by id:
    ``stored_arrays`` here, or the worker's disk cache)."""
    if "generator" in spec:
        return generators.generate(spec)
    task = spec.get("task") or infer_task(spec["y"])
    return build_arrays(spec["X"], spec["y"], task, limits, loc=loc)


def stored_arrays(session: Session, tenant_id: str, dataset_id: str) -> DatasetArrays:
    """A stored dataset's arrays, read from its blob in the database."""
    dataset = get_dataset(session, tenant_id, dataset_id)
    blob = session.get(DatasetBlob, dataset.sha256)
    if blob is None:
        raise NotFound(f"the arrays of dataset {dataset_id} are missing")
    return unpack(blob.data, dataset.task, dataset.classes)
