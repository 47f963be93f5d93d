"""Trained models: both weight layouts, and predictions with the engine's ``Network``.

Predictions apply the stored standardization and map output indices back to the original
class labels, exactly as the worker trained them.
"""

from __future__ import annotations

import io
from typing import Any

import numpy as np

from service.models import Job, TrainedModel
from service.problems import Invalid
from worker.nn import Network

PROBABILISTIC_OUTPUTS = ("softmax", "sigmoid")


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


def model_dict(job: Job, model: TrainedModel) -> dict[str, Any]:
    meta = model.meta
    net = load_network(model)
    return {
        "job_id": job.id,
        "layer_sizes": net.layer_sizes,
        "activations": net.activations,
        "loss": net.loss,
        "dtype": str(net.dtype),
        "task": meta.get("task"),
        "classes": meta.get("classes"),
        "standardization": meta.get("standardization"),
        "wb": [
            {"W": W.tolist(), "b": b.tolist()} for W, b in zip(net.weights, net.biases, strict=True)
        ],
        "theta": [theta.tolist() for theta in net.theta()],
        "stop_reason": meta.get("stop_reason"),
        "epochs_run": meta.get("epochs_run"),
    }


def standardize(X: np.ndarray, standardization: dict[str, Any] | None) -> np.ndarray:
    """(X - mean) / std with the training statistics; constant features keep std 1."""
    if not standardization:
        return X
    mean = np.asarray(standardization["mean"], dtype=np.float64)
    std = np.asarray(standardization["std"], dtype=np.float64)
    std = np.where(std > 0, std, 1.0)
    return (X - mean) / std


def predict(model: TrainedModel, rows: list[list[float]]) -> dict[str, Any]:
    """{predictions, probabilities?} for X of shape (n_samples, n_features)."""
    meta = model.meta
    n_features = int(meta["layer_sizes"][0])
    widths = {len(row) for row in rows}
    if widths != {n_features}:
        bad = sorted(widths - {n_features})
        raise Invalid.at(["body", "X"], f"each row needs {n_features} features, got {bad}")
    X = standardize(np.asarray(rows, dtype=np.float64), meta.get("standardization"))
    net = load_network(model)
    output = np.asarray(net.forward(X), dtype=np.float64)
    classes = meta.get("classes")
    if meta.get("task") == "classification" and classes:
        if output.shape[1] == 1:  # a single sigmoid unit: P(class 1)
            index = (output[:, 0] >= 0.5).astype(np.int64)
        else:
            index = np.argmax(output, axis=1)
        result: dict[str, Any] = {"predictions": [classes[i] for i in index]}
        if net.activations[-1] in PROBABILISTIC_OUTPUTS:
            result["probabilities"] = output.tolist()
        return result
    if output.shape[1] == 1:
        return {"predictions": output[:, 0].tolist()}
    return {"predictions": output.tolist()}
