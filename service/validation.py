"""Validation of a job spec beyond its schema: against its dataset and the limits.

``schemas.spec`` checks types, names and ranges; here the spec meets what JSON Schema
cannot say: the dataset it names (stored, generated or inline), the network that must
fit it (losses and outputs that go together, explicit weight shapes), and the configured
``Limits``. Errors are 422 naming the field. Kernel code: no Flask, no Celery, no worker.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple

import numpy as np
from pydantic import ValidationError
from sqlalchemy import select
from sqlalchemy.orm import Session

from service import budgets, dataset_arrays, datasets, generators
from service.config import Limits
from service.dataset_arrays import DatasetArrays
from service.models import Dataset
from service.problems import Invalid, Loc, from_validation_error
from service.quotas import QuotaLimits
from service.schemas.spec import (
    InitWeights,
    InlineDatasetSpec,
    JobSpec,
    StoredDatasetSpec,
    ThetaWeights,
    WbLayer,
    WbWeights,
    parameter_count,
)


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


class Validated(NamedTuple):
    """A checked job spec: canonical (defaults filled in), its stored dataset's id, and
    the run's estimated work (``budgets.run_work``)."""

    canonical: dict[str, Any]
    dataset_id: str | None
    work: int


def validate_spec(
    session: Session,
    tenant_id: str,
    spec: JobSpec | Mapping[str, Any],
    limits: Limits,
    loc: Loc = ("body",),
    *,
    store_inline: bool = False,
    quota: QuotaLimits | None = None,
) -> Validated:
    """Check a job spec against its dataset and the limits.

    Returns the canonical spec (defaults filled in, JSON-ready), the stored dataset's id
    and the run's estimated work (``budgets.run_work``).
    Raises ``Invalid`` (422) with the location of the first problem.

    With ``store_inline`` (a job being created), inline X and y are stored once every check
    has passed, as a content-addressed dataset (``datasets.store_inline``: the same data
    gives the same dataset, counted against ``quota``'s storage like an upload; flushed,
    not committed), and the canonical spec names it: ``{"id": ..., "inline": true, ...}``.
    """
    model = parse_spec(spec, loc)
    loc = list(loc)
    shape, dataset_id, dataset_dict, arrays = _resolve_dataset(
        session, tenant_id, model, limits, [*loc, "dataset"]
    )
    _check_network(model, shape, limits, [*loc, "network"])
    work = _check_training(model, shape, limits, [*loc, "training"])
    canonical = model.model_dump(mode="json")
    if store_inline and arrays is not None:
        stored = datasets.store_inline(session, tenant_id, arrays, quota)
        dataset_dict = inline_reference(dataset_dict, stored.id)
        dataset_id = stored.id
    canonical["dataset"] = dataset_dict
    return Validated(canonical, dataset_id, work)


def inline_reference(inline: Mapping[str, Any], dataset_id: str) -> dict[str, Any]:
    """An inline dataset spec as stored in the job: the stored dataset's id in place of X,
    y and task (the dataset has them), ``inline: true``, and the options it had."""
    options = {k: v for k, v in inline.items() if k not in ("X", "y", "task")}
    return {"id": dataset_id, "inline": True, "validation": None, **options}


def _resolve_dataset(
    session: Session, tenant_id: str, spec: JobSpec, limits: Limits, loc: list[str | int]
) -> tuple[DataShape, str | None, dict[str, Any], DatasetArrays | None]:
    """The data's shape, the stored dataset's id, the dataset spec as it will be stored,
    and an inline dataset's arrays (None for a stored or generated one)."""
    ds = spec.dataset
    dumped = ds.model_dump(mode="json")
    arrays: DatasetArrays | None = None
    if isinstance(ds, StoredDatasetSpec):
        row = session.scalar(
            select(Dataset).where(Dataset.id == ds.id, Dataset.tenant_id == tenant_id)
        )
        if row is None:
            raise Invalid.at([*loc, "id"], f"no dataset {ds.id}")
        shape = DataShape(row.task, row.n_samples, row.n_features, row.n_outputs)
        dataset_id: str | None = row.id
        if ds.validation is not None:
            _check_validation_set(
                session, tenant_id, row, ds.validation_split, ds.validation.id, loc
            )
    elif isinstance(ds, InlineDatasetSpec):
        task = ds.task or dataset_arrays.infer_task(ds.y)
        arrays = dataset_arrays.build_arrays(
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
    return shape, dataset_id, dumped, arrays


def _check_validation_set(
    session: Session,
    tenant_id: str,
    training: Dataset,
    split: float,
    validation_id: str,
    loc: list[str | int],
) -> None:
    """A named validation set: stored, same task and columns, labels among the classes."""
    if split > 0:
        raise Invalid.at(
            [*loc, "validation_split"], "give a validation set or a validation_split, not both"
        )
    where = [*loc, "validation", "id"]
    row = session.scalar(
        select(Dataset).where(Dataset.id == validation_id, Dataset.tenant_id == tenant_id)
    )
    if row is None:
        raise Invalid.at(where, f"no dataset {validation_id}")
    if row.task != training.task:
        raise Invalid.at(
            where, f"the validation set is {row.task}, the training set {training.task}"
        )
    if row.n_features != training.n_features:
        raise _unlike(where, "features", row.n_features, training.n_features)
    if training.task == "classification":
        known = {repr(c) for c in training.classes or []}
        unknown = [c for c in row.classes or [] if repr(c) not in known]
        if unknown:
            raise Invalid.at(
                where, f"classes {unknown} of the validation set are not in the training set"
            )
    elif row.n_outputs != training.n_outputs:
        raise _unlike(where, "targets", row.n_outputs, training.n_outputs)


def _unlike(where: Loc, what: str, validation: int, training: int) -> Invalid:
    """The validation set has another count of ``what`` (features, targets)."""
    return Invalid.at(
        where, f"the validation set has {validation} {what}, the training set {training}"
    )


def layer_sizes(spec: JobSpec, shape: DataShape) -> list[int]:
    """[n_in, h1, ..., K]: the hidden units between the dataset's input and output sizes
    (K = 1 for a two-class problem on one sigmoid unit)."""
    hidden = (layer.units for layer in spec.network.layers)
    return [shape.n_features, *hidden, spec.network.output.units or shape.n_outputs]


def check_output_units(
    units: int | None, activation: str, task: str, n_outputs: int, loc: Loc
) -> None:
    """``output.units: 1`` fits two classes on a sigmoid unit, or a single target."""
    if units is None or units == n_outputs:
        return
    if task != "classification" or n_outputs != 2:
        what = "classes" if task == "classification" else "targets"
        raise Invalid.at(
            [*loc, "output", "units"],
            f"one output unit fits two classes or one target; the data has {n_outputs} {what}",
        )
    if activation != "sigmoid":
        raise Invalid.at(
            [*loc, "output", "units"], "one output unit for two classes needs a sigmoid output"
        )


def _check_network(spec: JobSpec, shape: DataShape, limits: Limits, loc: list[str | int]) -> None:
    net = spec.network
    budgets.check_layers(layer_sizes(spec, shape), limits, loc)
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
    check_output_units(net.output.units, output, shape.task, shape.n_outputs, loc)
    sizes = layer_sizes(spec, shape)
    n_params = parameter_count(sizes)
    if n_params > limits.parameters:
        raise Invalid.at(loc, f"{n_params} parameters; at most {limits.parameters}")
    if isinstance(net.init, InitWeights):
        weight_arrays(net.init.weights, sizes, [*loc, "init", "weights", "layers"])


def weight_arrays(
    weights: ThetaWeights | WbWeights, sizes: Sequence[int], loc: Loc
) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """W^(l) (s_l, s_{l+1}) and b^(l) (s_{l+1},) from explicit weights in either layout.

    The one parser of explicit weights: a job's ``network.init.weights`` at submit and when
    the worker builds its network, and the weights of the backprop endpoints. Every shape
    is checked against ``sizes`` ([n_in, h1, ..., K]); a wrong one is 422 at its location.
    """
    n_layers = len(sizes) - 1
    if len(weights.layers) != n_layers:
        raise Invalid.at(loc, f"expected {n_layers} layers of weights, got {len(weights.layers)}")
    Ws: list[np.ndarray] = []
    bs: list[np.ndarray] = []
    layers: list[Any] = list(weights.layers)  # Θ matrices or W/b pairs
    for index, layer in enumerate(layers):
        n_in, n_out = sizes[index], sizes[index + 1]
        if isinstance(layer, WbLayer):
            Ws.append(_shaped(layer.W, (n_in, n_out), [*loc, index, "W"], "W"))
            b = np.asarray(layer.b, dtype=np.float64)
            if b.shape != (n_out,):
                raise Invalid.at([*loc, index, "b"], f"b must have shape ({n_out},), got {b.shape}")
            bs.append(b)
        else:
            theta = _shaped(layer, (n_out, n_in + 1), [*loc, index], "Θ")
            bs.append(theta[:, 0].copy())  # Ng's layout: the bias in column 0
            Ws.append(theta[:, 1:].T.copy())
    return Ws, bs


def _shaped(rows: list[list[float]], shape: tuple[int, int], loc: Loc, name: str) -> np.ndarray:
    if len({len(row) for row in rows}) > 1:
        raise Invalid.at(loc, f"{name} has rows of different lengths")
    array = np.asarray(rows, dtype=np.float64)
    if array.shape != shape:
        raise Invalid.at(loc, f"{name} must have shape {shape}, got {array.shape}")
    return array


def _check_training(spec: JobSpec, shape: DataShape, limits: Limits, loc: list[str | int]) -> int:
    """The training section's checks; returns the run's estimated work (``run_work``)."""
    training = spec.training
    if training.epochs > limits.epochs:
        raise Invalid.at([*loc, "epochs"], f"at most {limits.epochs} epochs")
    n_train = shape.n_samples - int(shape.n_samples * spec.dataset.validation_split)
    itemsize = 4 if training.dtype == "float32" else 8
    budgets.check_job_memory(
        layer_sizes(spec, shape),
        shape.n_samples,
        training.batch_size or n_train,
        itemsize,
        limits,
        [*loc, "batch_size"],
    )
    if training.gradient_check:
        n_params = parameter_count(layer_sizes(spec, shape))
        if n_params > limits.gradcheck_parameters:
            raise Invalid.at(
                [*loc, "gradient_check"],
                f"the gradient check allows at most {limits.gradcheck_parameters} parameters "
                f"(this network has {n_params})",
            )
    sizes = layer_sizes(spec, shape)
    return budgets.run_work(
        sizes, n_train, training.epochs, training.gradient_check, training.batch_size
    )
