"""From a job's stored spec to the engine objects of one run: network, trainer, targets.

The stored spec is validated into a ``JobSpec`` once, here, and every engine argument is
passed explicitly from it: the API's pydantic defaults (``service.schemas.spec``) are the
only defaults a job ever uses. Explicit weights are read by the one parser
(``service.validation.weight_arrays``) and the standardization is the trained-model
home's (``service.trained``), so what the worker trains is what the API validated and
what prediction later undoes. It is kernel code because the API builds runs too: the
learning-rate finder (``service.lr_finder``) must see exactly the network, split and
standardized training examples the job would train on.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from service.dataset_arrays import DatasetArrays
from service.schemas.spec import InitWeights, JobSpec
from service.trained import Standardization
from service.validation import weight_arrays
from worker.nn import EarlyStopping, Network, Trainer, TrainingConfig


@dataclass
class Prepared:
    """The engine objects of a run, built from the job's validated spec."""

    spec: JobSpec
    net: Network
    trainer: Trainer
    data: DatasetArrays
    standardization: Standardization | None


def prepare(
    spec: JobSpec | Mapping[str, Any],
    data: DatasetArrays,
    validation: DatasetArrays | None = None,
) -> Prepared:
    """Build network and trainer; one-hot encode classes; standardize if asked.

    ``validation`` is the job's named validation set (``dataset.validation``), if any:
    then nothing of ``data`` is split off.
    """
    job = spec if isinstance(spec, JobSpec) else JobSpec.model_validate(dict(spec))
    units = job.network.output.units
    Y = targets(data, units)
    net = network(job, data.n_features, Y.shape[1])
    held_out = None
    if validation is not None:
        held_out = (validation.X, targets(in_classes_of(validation, data), units))
    config = training_config(job, data.task == "classification")
    trainer = Trainer(net, data.X, Y, config, validation=held_out)
    standardization = None
    if job.dataset.standardize:
        # The trainer draws the validation split, so the statistics can only be taken
        # after it is built: those of the training split, applied to both splits.
        standardization = Standardization.fit(trainer.X_train)
        trainer.X_train = standardization.apply(trainer.X_train)
        if trainer.X_val is not None:
            trainer.X_val = standardization.apply(trainer.X_val)
    return Prepared(job, net, trainer, data, standardization)


def targets(data: DatasetArrays, output_units: int | None = None) -> np.ndarray:
    """Y of shape (n_samples, K): one-hot rows for classification (K = number of classes;
    with one output unit for two classes, K = 1 and y = 1 for the second class), else the
    targets as a matrix."""
    if data.task == "classification" and output_units == 1 and len(data.classes or []) == 2:
        return data.y.reshape(data.n_samples, 1).astype(np.float64)
    if data.task == "classification":
        Y = np.zeros((data.n_samples, len(data.classes or [])), dtype=np.float64)
        Y[np.arange(data.n_samples), data.y] = 1.0
        return Y
    return data.y.reshape(data.n_samples, -1).astype(np.float64, copy=False)


def in_classes_of(validation: DatasetArrays, data: DatasetArrays) -> DatasetArrays:
    """The validation set's class indices renumbered into the training set's classes
    (validation checked at submit that its labels are among them)."""
    if data.task != "classification" or validation.classes == data.classes:
        return validation
    index = {repr(c): i for i, c in enumerate(data.classes or [])}
    renumber = np.asarray([index[repr(c)] for c in validation.classes or []], dtype=np.int64)
    return dataclasses.replace(validation, y=renumber[validation.y], classes=data.classes)


def network(spec: JobSpec, n_inputs: int, n_outputs: int) -> Network:
    """The job's network between the data's input and output sizes, in its dtype."""
    net, training = spec.network, spec.training
    sizes = [n_inputs, *(layer.units for layer in net.layers), n_outputs]
    activations: list[str] = [layer.activation for layer in net.layers]
    activations.append(net.output.activation)
    if isinstance(net.init, InitWeights):
        loc = ("network", "init", "weights", "layers")
        weights, biases = weight_arrays(net.init.weights, sizes, loc)
        return Network(sizes, activations, net.loss, weights, biases, training.dtype)
    rng = np.random.default_rng(training.seed)
    return Network.initialized(sizes, activations, net.loss, net.init.scheme, rng, training.dtype)


def training_config(spec: JobSpec, classification: bool) -> TrainingConfig:
    """Every field of the engine's config, from the spec (none left to engine defaults)."""
    training, optimizer = spec.training, spec.training.optimizer
    early = training.early_stopping
    return TrainingConfig(
        optimizer=optimizer.name,
        learning_rate=optimizer.learning_rate,
        momentum=optimizer.momentum,
        beta1=optimizer.beta1,
        beta2=optimizer.beta2,
        epsilon=optimizer.epsilon,
        epochs=training.epochs,
        batch_size=training.batch_size,
        l2=training.l2,
        seed=training.seed,
        early_stopping=None if early is None else EarlyStopping(early.patience, early.min_delta),
        lr_schedule=training.lr_schedule.model_dump(),
        validation_split=spec.dataset.validation_split,
        classification=classification,
        stratify=True,
        record_grad_norms=training.record.grad_norms,
        record_activations=training.record.activations,
    )
