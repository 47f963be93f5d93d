"""``POST /backprop/trace`` and ``POST /backprop/gradient-check``: backprop made visible.

Both run synchronously in the API process on small problems (``Settings.limits``:
``trace_parameters``/``trace_examples`` and ``gradcheck_parameters``/``gradcheck_examples``;
over a limit answers 413 naming it). The domain functions (``trace``, ``check``) are
Flask-free: they take a validated request model and the limits, build a float64 network,
and return the JSON body. The views only parse, call them and serialize.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
from flask import Response

from service.api import deps
from service.api.blueprint import api_blueprint
from service.api.http import respond
from service.api.openapi import PROBLEM_REF, problems
from service.config import Limits
from service.problems import PROBLEM_MEDIA_TYPE, Invalid, PayloadTooLarge
from service.schemas.backprop import (
    GradientCheckRequest,
    GradientCheckResponse,
    TraceRequest,
    TraceResponse,
)
from service.schemas.spec import InitWeights, ThetaWeights, parameter_count
from worker.nn.errors import SpecError
from worker.nn.gradcheck import gradient_check
from worker.nn.network import Network
from worker.nn.trace import ng_trace

Loc = list[str | int]


@dataclass(frozen=True)
class BackpropInput:
    """A network, its inputs X (m, s_1) and targets Y (m, K), ready to differentiate."""

    net: Network
    X: np.ndarray
    Y: np.ndarray
    classes: list[Any] | None
    weights: dict[str, Any]  # the "weights" block of the response


def trace(body: TraceRequest, limits: Limits) -> dict[str, Any]:
    """The body of a trace response: Ng's trace plus the weights and targets used."""
    problem = build_problem(
        body,
        max_examples=limits.trace_examples,
        max_parameters=limits.trace_parameters,
        limit_names=("trace_examples", "trace_parameters"),
    )
    result = ng_trace(problem.net, problem.X, problem.Y, l2=body.l2, per_example=body.per_example)
    _require_finite(result, "the trace")
    result["weights"] = problem.weights
    result["targets"] = _targets(problem)
    return result


def check(body: GradientCheckRequest, limits: Limits) -> dict[str, Any]:
    """The body of a gradient-check response: the report plus the weights and targets used."""
    problem = build_problem(
        body,
        max_examples=limits.gradcheck_examples,
        max_parameters=limits.gradcheck_parameters,
        limit_names=("gradcheck_examples", "gradcheck_parameters"),
    )
    with np.errstate(over="ignore", under="ignore", invalid="ignore", divide="ignore"):
        _require_finite(problem.net.cost(problem.X, problem.Y, body.l2), "the cost")
        report = gradient_check(
            problem.net,
            problem.X,
            problem.Y,
            l2=body.l2,
            epsilon=body.epsilon,
            threshold=body.threshold,
        )
    result = report.to_dict(include_gradients=body.include_gradients)
    _require_finite([report.numerical, report.analytic, report.worst.abs_diff], "the gradients")
    result["weights"] = problem.weights
    result["targets"] = _targets(problem)
    return result


def build_problem(
    body: TraceRequest | GradientCheckRequest,
    max_examples: int,
    max_parameters: int,
    limit_names: tuple[str, str],
) -> BackpropInput:
    """Check sizes and shapes (422 with the field's location, 413 over a limit) and build."""
    X = _matrix(body.X, ["body", "X"])
    m, n_inputs = X.shape
    if m > max_examples:
        raise PayloadTooLarge(
            f"{m} examples exceed the {limit_names[0]} limit of {max_examples}",
            errors=[(["body", "X"], f"at most {max_examples} examples ({limit_names[0]})")],
        )
    Y, classes = _targets_matrix(body, m)
    hidden = [layer.units for layer in body.network.layers]
    sizes = [n_inputs, *hidden, Y.shape[1]]
    n_parameters = parameter_count(sizes)
    if n_parameters > max_parameters:
        raise PayloadTooLarge(
            f"{n_parameters} parameters exceed the {limit_names[1]} limit of {max_parameters}",
            errors=[
                (["body", "network"], f"at most {max_parameters} parameters ({limit_names[1]})")
            ],
        )
    activations = [layer.activation for layer in body.network.layers]
    activations.append(body.network.output.activation)
    loss = body.network.loss

    explicit, loc = _explicit_weights(body)
    try:
        if explicit is None:
            scheme = getattr(body.network.init, "scheme", "glorot")
            net = Network.initialized(
                sizes, activations, loss, scheme, rng=np.random.default_rng(body.seed)
            )
            source: dict[str, Any] = {"source": "init", "init": scheme, "seed": body.seed}
        else:
            W, b = _weights_arrays(explicit, sizes, loc)
            net = Network(sizes, activations, loss, W, b)
            source = {"source": "request"}
    except SpecError as exc:
        raise Invalid.at(["body", "network"], str(exc)) from None
    weights = {
        **source,
        "theta": [t.tolist() for t in net.theta()],
        "wb": [{"W": p["W"].tolist(), "b": p["b"].tolist()} for p in net.wb()],
    }
    return BackpropInput(net=net, X=X, Y=Y, classes=classes, weights=weights)


def _matrix(rows: list[list[float]], loc: Loc) -> np.ndarray:
    widths = {len(row) for row in rows}
    if len(widths) != 1:
        raise Invalid.at(loc, "rows have different lengths")
    if widths == {0}:
        raise Invalid.at(loc, "rows are empty")
    return np.asarray(rows, dtype=np.float64)


def _targets_matrix(
    body: TraceRequest | GradientCheckRequest, m: int
) -> tuple[np.ndarray, list[Any] | None]:
    """Y of shape (m, K) from y, and the class of each column for labels."""
    loc: Loc = ["body", "y"]
    if len(body.y) != m:
        raise Invalid.at(loc, f"X has {m} rows but y has {len(body.y)}")
    if all(isinstance(v, list) for v in body.y):
        return _matrix(body.y, loc), None  # type: ignore[arg-type]
    if any(isinstance(v, list) for v in body.y):
        raise Invalid.at(loc, "y must be a vector or a matrix, not a mix")
    task = body.task or ("regression" if body.network.loss == "mse" else "classification")
    if task == "regression":
        if any(isinstance(v, str) for v in body.y):
            raise Invalid.at(loc, "regression targets must be numbers")
        return np.asarray(body.y, dtype=np.float64)[:, None], None
    labels = list(body.y)
    if body.classes is not None:
        classes = list(body.classes)
        if len(set(map(repr, classes))) != len(classes):
            raise Invalid.at(["body", "classes"], "classes must be distinct")
    else:
        try:
            classes = sorted(set(labels))
        except TypeError:
            raise Invalid.at(loc, "labels must be all numbers or all strings") from None
    column = {repr(c): k for k, c in enumerate(classes)}
    Y = np.zeros((m, len(classes)))
    for i, label in enumerate(labels):
        k = column.get(repr(label))
        if k is None:
            raise Invalid.at([*loc, i], f"label {label!r} is not one of classes")
        Y[i, k] = 1.0
    return Y, classes


def _explicit_weights(
    body: TraceRequest | GradientCheckRequest,
) -> tuple[Any, Loc]:
    """The weights the caller gave (top-level or in network.init) and where they were."""
    in_init = body.network.init.weights if isinstance(body.network.init, InitWeights) else None
    if body.weights is not None and in_init is not None:
        raise Invalid.at(["body", "weights"], "give the weights once: here or in network.init")
    if body.weights is not None:
        return body.weights, ["body", "weights", "layers"]
    return in_init, ["body", "network", "init", "weights", "layers"]


def _weights_arrays(
    spec: Any, sizes: list[int], loc: Loc
) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """W^(l) (s_l, s_{l+1}) and b^(l) (s_{l+1},) from either layout, every shape checked."""
    n_layers = len(sizes) - 1
    if len(spec.layers) != n_layers:
        raise Invalid.at(loc, f"expected {n_layers} layers of weights, got {len(spec.layers)}")
    weights: list[np.ndarray] = []
    biases: list[np.ndarray] = []
    for index, layer in enumerate(spec.layers):
        n_in, n_out = sizes[index], sizes[index + 1]
        if isinstance(spec, ThetaWeights):
            theta = _shaped(layer, (n_out, n_in + 1), [*loc, index], "Θ")
            biases.append(theta[:, 0].copy())
            weights.append(theta[:, 1:].T.copy())
        else:
            weights.append(_shaped(layer.W, (n_in, n_out), [*loc, index, "W"], "W"))
            b = np.asarray(layer.b, dtype=np.float64)
            if b.shape != (n_out,):
                raise Invalid.at([*loc, index, "b"], f"b must have shape ({n_out},), got {b.shape}")
            biases.append(b)
    return weights, biases


def _shaped(rows: list[list[float]], shape: tuple[int, int], loc: Loc, name: str) -> np.ndarray:
    if len({len(row) for row in rows}) > 1:
        raise Invalid.at(loc, f"{name} has rows of different lengths")
    array = np.asarray(rows, dtype=np.float64)
    if array.shape != shape:
        raise Invalid.at(loc, f"{name} must have shape {shape}, got {array.shape}")
    return array


def _targets(problem: BackpropInput) -> dict[str, Any]:
    return {"Y": problem.Y.tolist(), "classes": problem.classes}


def _require_finite(value: Any, what: str) -> None:
    """JSON has no NaN or infinity; a saturated network answers 422 instead of bad JSON."""
    if not _all_finite(value):
        raise Invalid.at(
            ["body", "network"],
            f"{what} is not finite for these weights and data (an output saturated?)",
        )


def _all_finite(value: Any) -> bool:
    """True when every number in nested dicts, lists and arrays is finite."""
    if isinstance(value, float):
        return math.isfinite(value)
    if isinstance(value, np.ndarray):
        return bool(np.isfinite(value).all())
    if isinstance(value, dict):
        return all(_all_finite(v) for v in value.values())
    if isinstance(value, list | tuple):
        return all(_all_finite(v) for v in value)
    return True


# --- HTTP ------------------------------------------------------------------------------

bp = api_blueprint("backprop", __name__, "/backprop", tag="backprop")

_LIMIT_413 = {
    413: {
        "description": "Over a size limit of the synchronous backprop endpoints (the detail "
        "names it: trace_examples, trace_parameters, gradcheck_examples, gradcheck_parameters)",
        "content": {PROBLEM_MEDIA_TYPE: {"schema": PROBLEM_REF}},
    }
}


@bp.post(
    "/trace",
    summary="One backprop pass in Ng's notation: a, z, δ, Δ and D per layer",
    description="Small problems only (limits trace_examples and trace_parameters). Δ, D, "
    "D_data and D_reg are in Θ layout: rows = units of layer l+1, column 0 = bias. "
    "`per_example: true` adds each example's δ and its contribution δ^(l+1) a^(l)ᵀ, "
    "whose sum over the examples is Δ.",
    responses={200: TraceResponse, **problems(400), **_LIMIT_413},
)
def post_trace(body: TraceRequest) -> Response:
    return respond(trace(body, deps.settings().limits))


@bp.post(
    "/gradient-check",
    summary="Backprop's gradient against centered differences",
    description="Relative difference ‖num − ana‖ / ‖num + ana‖ overall and per layer, the "
    "worst parameter (layer, Θ indices, numerical vs analytic) and `passed` against the "
    "threshold. Small problems only (limits gradcheck_examples and gradcheck_parameters).",
    responses={200: GradientCheckResponse, **problems(400), **_LIMIT_413},
)
def post_gradient_check(body: GradientCheckRequest) -> Response:
    return respond(check(body, deps.settings().limits))
