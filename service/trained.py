"""Trained models: the one stored format, standardization, loading and prediction.

The worker writes a model when a run succeeds (``weights_npz`` and ``model_meta``, stored
by ``job_finish.finish_succeeded``); the API reads it back (``get``), shows it
(``responses.trained_model``) and predicts with it. Both sides use this module, so the
NPZ layout and the standardization are written once:

- ``trained_models.weights``: NPZ with ``W0, b0, W1, b1, ...`` (W of shape (n_in, n_out));
- ``trained_models.meta``: ``{"layer_sizes", "activations", "loss", "dtype", "task",
  "classes", "standardization": {"mean", "std"} | null, "stop_reason", "epochs_run"}``.

Predictions apply the stored standardization and map output indices back to the original
class labels, exactly as the worker trained them. Kernel code that uses the engine
(``worker.nn``), as prediction must; no Flask, no Celery.
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from typing import Any

import numpy as np
from sqlalchemy.orm import Session

from service import budgets, deadlines
from service.config import Limits
from service.jobs import get_job
from service.models import Job, TrainedModel
from service.problems import Conflict, Invalid
from service.schemas.names import JobStatus
from worker.nn import Network

PROBABILISTIC_OUTPUTS = ("softmax", "sigmoid")


@dataclass(frozen=True)
class Standardization:
    """Per-feature statistics of the training split: X ↦ (X - mean) / std.

    mean, std : ndarray of shape (n_features,); a constant feature keeps std 1.
    """

    mean: np.ndarray
    std: np.ndarray

    @classmethod
    def fit(cls, X: np.ndarray) -> Standardization:
        std = X.std(axis=0)
        return cls(X.mean(axis=0), np.where(std > 0, std, 1.0))

    def apply(self, X: np.ndarray) -> np.ndarray:
        """X of shape (n, n_features), standardized in X's dtype."""
        return ((X - self.mean) / self.std).astype(X.dtype, copy=False)

    def to_json(self) -> dict[str, list[float]]:
        return {"mean": self.mean.tolist(), "std": self.std.tolist()}

    @classmethod
    def from_json(cls, stored: dict[str, Any] | None) -> Standardization | None:
        if not stored:
            return None
        std = np.asarray(stored["std"], dtype=np.float64)
        return cls(np.asarray(stored["mean"], dtype=np.float64), np.where(std > 0, std, 1.0))


# --- writing (the worker) --------------------------------------------------------------------


def weights_npz(net: Network) -> bytes:
    """NPZ bytes with W0, b0, W1, b1, … (W of shape (n_in, n_out), b of shape (n_out,))."""
    arrays: dict[str, np.ndarray] = {}
    for index, layer in enumerate(net.wb()):
        arrays[f"W{index}"] = layer["W"]
        arrays[f"b{index}"] = layer["b"]
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)  # type: ignore[arg-type]
    return buffer.getvalue()


def model_meta(
    net: Network,
    *,
    task: str,
    classes: list[Any] | None,
    standardization: Standardization | None,
    stop_reason: str | None,
    epochs_run: int,
) -> dict[str, Any]:
    """What prediction needs besides the weights, and how the run ended."""
    return {
        "layer_sizes": list(net.layer_sizes),
        "activations": list(net.activations),
        "loss": net.loss,
        "dtype": net.dtype.name,
        "task": task,
        "classes": classes,
        "standardization": None if standardization is None else standardization.to_json(),
        "stop_reason": stop_reason,
        "epochs_run": epochs_run,
    }


# --- reading (the API) -----------------------------------------------------------------------


@dataclass(frozen=True)
class Trained:
    """A succeeded job's model: its stored meta and the engine network it describes."""

    job: Job
    meta: dict[str, Any]
    net: Network


def load_network(model: TrainedModel) -> Network:
    """The engine network described by the model's meta, with its stored W/b."""
    meta = model.meta
    n_layers = len(meta["layer_sizes"]) - 1
    with np.load(io.BytesIO(model.weights), allow_pickle=False) as npz:
        weights = [npz[f"W{i}"] for i in range(n_layers)]
        biases = [npz[f"b{i}"] for i in range(n_layers)]
    return Network(
        meta["layer_sizes"], meta["activations"], meta["loss"], weights, biases, meta["dtype"]
    )


def get(session: Session, tenant_id: str, job_id: str) -> Trained:
    """The job's trained model; 409 unless the job succeeded."""
    job = get_job(session, tenant_id, job_id)
    if job.status != JobStatus.succeeded:
        raise Conflict(f"job {job.id} is {job.status}; a model exists once it has succeeded")
    model = session.get(TrainedModel, job.id)
    if model is None:
        raise Conflict(f"job {job.id} succeeded but stored no model")
    return Trained(job, model.meta, load_network(model))


@dataclass(frozen=True)
class Prediction:
    """Class labels (classification) or targets: a value or a row per example; and the
    per-class outputs of a softmax or sigmoid classifier."""

    predictions: list[Any]
    probabilities: list[list[float]] | None = None


def predict(trained: Trained, rows: list[list[float]], limits: Limits | None = None) -> Prediction:
    """Predict for X of shape (n_samples, n_features), within the prediction budgets
    (rows, rows × outputs, rows × parameters), one chunk of rows at a time so that no
    activation holds more than ``predict_chunk_values`` values."""
    limits = limits or Limits()
    meta, net = trained.meta, trained.net
    sizes = [int(s) for s in meta["layer_sizes"]]
    budgets.check_predict(sizes, len(rows), limits)
    n_features = sizes[0]
    widths = {len(row) for row in rows}
    if widths != {n_features}:
        bad = sorted(widths - {n_features})
        raise Invalid.at(["body", "X"], f"each row needs {n_features} features, got {bad}")
    X = np.asarray(rows, dtype=np.float64)
    standardization = Standardization.from_json(meta.get("standardization"))
    if standardization is not None:
        X = standardization.apply(X)
    step = budgets.predict_chunk_rows(sizes, limits)
    output = np.empty((X.shape[0], sizes[-1]), dtype=np.float64)
    for start in range(0, X.shape[0], step):
        deadlines.check("predicting")
        output[start : start + step] = net.forward(X[start : start + step])
    classes = meta.get("classes")
    if meta.get("task") == "classification" and classes:
        if output.shape[1] == 1:  # a single sigmoid unit: P(second class)
            index = (output[:, 0] >= 0.5).astype(np.int64)
            if len(classes) == 2:  # one probability per class, as with two units
                output = np.c_[1.0 - output[:, 0], output[:, 0]]
        else:
            index = np.argmax(output, axis=1)
        probabilistic = net.activations[-1] in PROBABILISTIC_OUTPUTS
        return Prediction([classes[i] for i in index], output.tolist() if probabilistic else None)
    if output.shape[1] == 1:
        return Prediction(output[:, 0].tolist())
    return Prediction(output.tolist())
