"""The API side of the job domain: validate and create, read, list, curve, cancel, delete.

Functions take a session and return models or raise ``service.problems`` errors.
``create_job`` only adds and flushes (a batch creates many jobs in one transaction);
``submit_job`` adds the Idempotency-Key handling and commits. Every status change is a
compare-and-set that reports whether it won, and every write bumps ``jobs.version``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from pydantic import ValidationError
from sqlalchemy import Select, delete, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from service import datasets, generators, idempotency, lifecycle
from service.config import Limits
from service.dispatch import Sender, dispatch
from service.models import Dataset, Job
from service.problems import Conflict, Invalid, NotFound, from_validation_error
from service.schemas.names import FINISHED, JobStatus, Queue
from service.schemas.spec import (
    InitWeights,
    InlineDatasetSpec,
    JobSpec,
    StoredDatasetSpec,
    ThetaWeights,
    parameter_count,
)

Loc = Sequence[str | int]


# --- validation ----------------------------------------------------------------------


@dataclass(frozen=True)
class DataShape:
    """What the network must fit: task and sizes of the (resolved) dataset."""

    task: str
    n_samples: int
    n_features: int
    n_outputs: int


def parse_spec(spec: JobSpec | Mapping[str, Any], loc: Loc = ("body",)) -> JobSpec:
    if isinstance(spec, JobSpec):
        return spec
    try:
        return JobSpec.model_validate(dict(spec))
    except ValidationError as error:
        raise from_validation_error(error, prefix=loc) from None


def validate_spec(
    session: Session,
    tenant_id: str,
    spec: JobSpec | Mapping[str, Any],
    limits: Limits,
    loc: Loc = ("body",),
) -> tuple[dict[str, Any], str | None]:
    """Check a job spec against its dataset and the limits.

    Returns the canonical spec (defaults filled in, JSON-ready) and the stored dataset's id.
    Raises ``Invalid`` (422) with the location of the first problem.
    """
    model = parse_spec(spec, loc)
    loc = list(loc)
    shape, dataset_id, dataset_dict = _resolve_dataset(
        session, tenant_id, model, limits, [*loc, "dataset"]
    )
    _check_network(model, shape, limits, [*loc, "network"])
    _check_training(model, shape, limits, [*loc, "training"])
    canonical = model.model_dump(mode="json")
    canonical["dataset"] = dataset_dict
    return canonical, dataset_id


def _resolve_dataset(
    session: Session, tenant_id: str, spec: JobSpec, limits: Limits, loc: list[str | int]
) -> tuple[DataShape, str | None, dict[str, Any]]:
    ds = spec.dataset
    dumped = ds.model_dump(mode="json")
    if isinstance(ds, StoredDatasetSpec):
        row = session.scalar(
            select(Dataset).where(Dataset.id == ds.id, Dataset.tenant_id == tenant_id)
        )
        if row is None:
            raise Invalid.at([*loc, "id"], f"no dataset {ds.id}")
        shape = DataShape(row.task, row.n_samples, row.n_features, row.n_outputs)
        dataset_id: str | None = row.id
    elif isinstance(ds, InlineDatasetSpec):
        task = ds.task or datasets.infer_task(ds.y)
        arrays = datasets.build_arrays(
            ds.X, ds.y, task, limits, loc=loc, max_samples=limits.inline_samples
        )
        dumped["task"] = task
        shape = DataShape(task, arrays.n_samples, arrays.n_features, arrays.n_outputs)
        dataset_id = None
    else:
        task, n_features, n_outputs = generators.describe(ds)
        if ds.n_samples > limits.dataset_samples:
            raise Invalid.at([*loc, "n_samples"], f"at most {limits.dataset_samples} samples")
        if ds.n_samples * n_features > limits.dataset_values:
            raise Invalid.at([*loc, "n_samples"], "the generated dataset would be too large")
        shape = DataShape(task, ds.n_samples, n_features, n_outputs)
        dataset_id = None
    split = ds.validation_split
    if split > 0 and (shape.n_samples * split < 1 or shape.n_samples * (1 - split) < 1):
        raise Invalid.at(
            [*loc, "validation_split"],
            f"a split of {split} leaves no training or no validation example of {shape.n_samples}",
        )
    return shape, dataset_id, dumped


def layer_sizes(spec: JobSpec, shape: DataShape) -> list[int]:
    """[n_in, h1, ..., K]: the hidden units between the dataset's input and output sizes."""
    return [shape.n_features, *(layer.units for layer in spec.network.layers), shape.n_outputs]


def _check_network(spec: JobSpec, shape: DataShape, limits: Limits, loc: list[str | int]) -> None:
    net = spec.network
    if len(net.layers) > limits.layers:
        raise Invalid.at([*loc, "layers"], f"at most {limits.layers} hidden layers")
    for i, layer in enumerate(net.layers):
        if layer.units > limits.units:
            raise Invalid.at([*loc, "layers", i, "units"], f"at most {limits.units} units")
    output, loss = net.output.activation, net.loss
    if loss == "cross_entropy" and output != "softmax":
        raise Invalid.at([*loc, "loss"], "cross_entropy needs a softmax output")
    if loss == "binary_cross_entropy" and output != "sigmoid":
        raise Invalid.at([*loc, "loss"], "binary_cross_entropy needs a sigmoid output")
    if shape.task == "regression":
        if loss != "mse":
            raise Invalid.at([*loc, "loss"], "a regression dataset needs the mse loss")
        if output == "softmax":
            raise Invalid.at([*loc, "output", "activation"], "softmax is for classification")
    sizes = layer_sizes(spec, shape)
    n_params = parameter_count(sizes)
    if n_params > limits.parameters:
        raise Invalid.at(loc, f"{n_params} parameters; at most {limits.parameters}")
    if isinstance(net.init, InitWeights):
        _check_weights(net.init, sizes, [*loc, "init", "weights", "layers"])


def _check_weights(init: InitWeights, sizes: list[int], loc: list[str | int]) -> None:
    layers = init.weights.layers
    if len(layers) != len(sizes) - 1:
        raise Invalid.at(loc, f"{len(layers)} weight layers for a network of {len(sizes) - 1}")
    for i, (n_in, n_out) in enumerate(zip(sizes, sizes[1:], strict=False)):
        if isinstance(init.weights, ThetaWeights):
            _check_matrix(layers[i], (n_out, n_in + 1), [*loc, i], "Θ (n_out, n_in + 1)")
        else:
            wb = init.weights.layers[i]
            _check_matrix(wb.W, (n_in, n_out), [*loc, i, "W"], "W (n_in, n_out)")
            if len(wb.b) != n_out:
                raise Invalid.at([*loc, i, "b"], f"b has {len(wb.b)} values, expected {n_out}")


def _check_matrix(rows: Any, expected: tuple[int, int], loc: list[str | int], what: str) -> None:
    widths = {len(row) for row in rows}
    if len(widths) > 1:
        raise Invalid.at(loc, "rows have different lengths")
    shape = (len(rows), widths.pop() if widths else 0)
    if shape != expected:
        raise Invalid.at(loc, f"shape {shape}, expected {expected} for {what}")


def _check_training(spec: JobSpec, shape: DataShape, limits: Limits, loc: list[str | int]) -> None:
    training = spec.training
    if training.epochs > limits.epochs:
        raise Invalid.at([*loc, "epochs"], f"at most {limits.epochs} epochs")
    if training.gradient_check:
        n_params = parameter_count(layer_sizes(spec, shape))
        if n_params > limits.gradcheck_parameters:
            raise Invalid.at(
                [*loc, "gradient_check"],
                f"the gradient check allows at most {limits.gradcheck_parameters} parameters "
                f"(this network has {n_params})",
            )


# --- creating ------------------------------------------------------------------------


def create_job(
    session: Session,
    tenant_id: str,
    spec: JobSpec | Mapping[str, Any],
    name: str | None = None,
    batch_id: str | None = None,
    queue: str = Queue.interactive.value,
    params: dict[str, Any] | None = None,
    *,
    limits: Limits | None = None,
    idempotency_key: str | None = None,
    request_hash: str | None = None,
    loc: Loc = ("body",),
) -> Job:
    """Validate one job spec and add it as ``queued``. Flushes; never commits or dispatches.

    Raises ``Invalid`` (422, with field locations) before anything is added.
    """
    canonical, dataset_id = validate_spec(session, tenant_id, spec, limits or Limits(), loc)
    job = Job(
        tenant_id=tenant_id,
        batch_id=batch_id,
        dataset_id=dataset_id,
        name=name or default_name(canonical),
        status=JobStatus.queued.value,
        queue=str(queue),
        spec=canonical,
        params=params,
        epochs=canonical["training"]["epochs"],
        idempotency_key=idempotency_key,
        request_hash=request_hash,
    )
    session.add(job)
    session.flush()
    return job


def default_name(spec: Mapping[str, Any]) -> str:
    """A readable name such as ``spirals 8-8 tanh adam``."""
    ds = spec["dataset"]
    source = ds.get("generator") or ("dataset " + ds["id"][:8] if "id" in ds else "inline")
    layers = spec["network"]["layers"]
    hidden = "-".join(str(layer["units"]) for layer in layers) or "linear"
    acts = sorted({layer["activation"] for layer in layers})
    parts = [source, hidden, *acts, spec["training"]["optimizer"]["name"]]
    return " ".join(parts)[:200]


def submit_job(
    session: Session,
    tenant_id: str,
    spec: JobSpec | Mapping[str, Any],
    name: str | None,
    limits: Limits,
    idempotency_key: str | None = None,
    *,
    send: Sender | None = None,
) -> tuple[Job, bool]:
    """Create and COMMIT one job, then dispatch it with ``send``; return (job, created).

    With an Idempotency-Key, a repeat of the same body returns the first job (created False),
    a different body is 422, and concurrent repeats create one job (``service.idempotency``).
    Without ``send`` the job waits for the reaper to dispatch it.
    """
    model = parse_spec(spec)
    fingerprint = idempotency.fingerprint({"name": name, **model.model_dump(mode="json")})
    if idempotency_key:
        existing = idempotency.find(session, Job, tenant_id, idempotency_key)
        if existing is not None:
            return idempotency.replay(existing, fingerprint), False
    try:
        # The unique (tenant, key) constraint can fire at the flush or at the commit.
        job = create_job(
            session,
            tenant_id,
            model,
            name=name,
            limits=limits,
            idempotency_key=idempotency_key,
            request_hash=fingerprint if idempotency_key else None,
        )
        session.commit()
    except IntegrityError:
        session.rollback()
        if not idempotency_key:
            raise
        winner = idempotency.find(session, Job, tenant_id, idempotency_key)
        if winner is None:
            raise
        return idempotency.replay(winner, fingerprint), False
    if send is not None and dispatch(session, send, [(job.id, job.queue)]):
        session.refresh(job)  # recording the dispatch bumped the version (the ETag)
    return job, True


# --- state changes -------------------------------------------------------------------


def cancel_job(session: Session, tenant_id: str, job_id: str) -> Job:
    """queued → cancelled at once; running → cancelling (the run stops at its next flush).

    Cancelling twice is harmless; a finished job answers 409. Commits.
    """
    job = get_job(session, tenant_id, job_id)
    for _ in range(5):  # the status may move under us; each loop re-reads it
        status = job.status
        if status == JobStatus.cancelling:
            return job
        if status not in (JobStatus.queued, JobStatus.running):
            raise Conflict(f"job {job.id} is already {status}")
        won = lifecycle.request_cancel(session, job.id, status)
        session.commit()
        session.refresh(job)
        if won:
            return job
    raise Conflict(f"job {job.id} changed state while cancelling; try again")


def delete_job(session: Session, tenant_id: str, job_id: str) -> None:
    """Delete a finished job with its curve, checkpoint and model (FK cascade). Commits."""
    job = get_job(session, tenant_id, job_id)
    if job.status not in FINISHED:
        raise Conflict(f"job {job.id} is {job.status}; cancel it and wait until it finishes")
    session.expunge(job)
    result = session.execute(
        delete(Job)
        .where(Job.id == job.id, Job.status.in_([s.value for s in FINISHED]))
        .execution_options(synchronize_session=False)
    )
    if result.rowcount != 1:  # type: ignore[attr-defined]
        session.rollback()
        raise Conflict(f"job {job.id} changed state; try again")
    session.commit()


# --- reading -------------------------------------------------------------------------


def get_job(session: Session, tenant_id: str, job_id: str) -> Job:
    """The tenant's job; another tenant's id is reported exactly like a missing one."""
    job = session.scalar(select(Job).where(Job.id == job_id, Job.tenant_id == tenant_id))
    if job is None:
        raise NotFound(f"no job {job_id}")
    return job


def list_jobs_query(
    tenant_id: str, status: str | None = None, batch_id: str | None = None
) -> Select[Any]:
    """The tenant's jobs, filtered (the shared keyset paginator orders them newest first)."""
    query = select(Job).where(Job.tenant_id == tenant_id)
    if status:
        query = query.where(Job.status == status)
    if batch_id:
        query = query.where(Job.batch_id == batch_id)
    return query


def etag(job: Job, kind: str = "job") -> str:
    """An entity tag (unquoted) that changes exactly when the job row is written."""
    return f"{kind}-{job.id}-{job.version}"
