"""A trained job's model (both weight layouts) and its predictions."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, Field

if TYPE_CHECKING:  # the engine is not imported to describe a model
    from service.trained import Prediction, Trained


class WbLayerOut(BaseModel):
    W: list[list[float]] = Field(description="Shape (n_in, n_out).")
    b: list[float] = Field(description="Shape (n_out,).")


class Standardization(BaseModel):
    mean: list[float]
    std: list[float]


class ModelOut(BaseModel):
    job_id: str
    layer_sizes: list[int]
    activations: list[str]
    loss: str
    dtype: str
    task: str
    classes: list[int | str | float] | None
    standardization: Standardization | None
    wb: list[WbLayerOut]
    theta: list[list[list[float]]] = Field(
        description="Ng's layout per layer: shape (n_out, n_in + 1), bias in column 0."
    )
    stop_reason: str | None
    epochs_run: int | None


def model_dict(trained: Trained) -> dict[str, Any]:
    meta, net = trained.meta, trained.net
    return {
        "job_id": trained.job.id,
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


class PredictOut(BaseModel):
    predictions: list[Any] = Field(
        description="Class labels (classification) or targets: a value or a row per example."
    )
    probabilities: list[list[float]] | None = Field(
        default=None, description="Per-class output of a softmax or sigmoid classifier."
    )


def prediction_dict(result: Prediction) -> dict[str, Any]:
    """``probabilities`` only for a softmax or sigmoid classifier."""
    out: dict[str, Any] = {"predictions": result.predictions}
    if result.probabilities is not None:
        out["probabilities"] = result.probabilities
    return out
