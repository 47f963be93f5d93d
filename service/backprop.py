"""Backprop made visible: Ng's trace and the gradient check of a small, given problem.

``trace`` and ``check`` take a validated request (``schemas.backprop``) and the limits,
build a float64 network (explicit weights, or drawn from ``network.init`` with the seed),
and return the JSON-ready body of ``POST /backprop/trace`` and ``POST
/backprop/gradient-check``. They run synchronously in the API process, so the problem
must be small: over a limit (``trace_examples``/``trace_parameters``,
``gradcheck_examples``/``gradcheck_parameters``) answers 413 naming it. Kernel code that
uses the engine; no Flask, no Celery.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from service import budgets, deadlines
from service.config import Limits
from service.problems import Invalid, Loc, PayloadTooLarge
from service.schemas.backprop import GradientCheckRequest, TraceRequest
from service.schemas.spec import InitWeights, parameter_count
from service.validation import check_output_units, weight_arrays
from worker.nn.errors import SpecError
from worker.nn.gradcheck import gradient_check
from worker.nn.network import Network
from worker.nn.trace import delta_norms, ng_trace


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
    problem = build_problem(body, limits, "trace")
    result = ng_trace(problem.net, problem.X, problem.Y, l2=body.l2, per_example=body.per_example)
    _require_finite(result, "the trace")
    result["delta_norms"] = delta_norms(problem.net, problem.X, problem.Y, l2=body.l2)
    result["weights"] = problem.weights
    result["targets"] = _targets(problem)
    return result


def check(body: GradientCheckRequest, limits: Limits) -> dict[str, Any]:
    """The body of a gradient-check response: the report plus the weights and targets used."""
    problem = build_problem(body, limits, "gradcheck")
    with np.errstate(over="ignore", under="ignore", invalid="ignore", divide="ignore"):
        _require_finite(problem.net.cost(problem.X, problem.Y, body.l2), "the cost")
        report = gradient_check(
            problem.net,
            problem.X,
            problem.Y,
            l2=body.l2,
            epsilon=body.epsilon,
            threshold=body.threshold,
            tick=deadlines.checker("in the gradient check"),
        )
    result = report.to_dict(include_gradients=body.include_gradients)
    _require_finite([report.numerical, report.analytic, report.worst.abs_diff], "the gradients")
    result["weights"] = problem.weights
    result["targets"] = _targets(problem)
    return result


def build_problem(
    body: TraceRequest | GradientCheckRequest, limits: Limits, kind: str
) -> BackpropInput:
    """Check sizes and shapes (422 with the field's location, 413 over a limit) and build.

    ``kind`` names the limits: ``trace`` (trace_examples, trace_parameters) or
    ``gradcheck`` (gradcheck_examples, gradcheck_parameters).
    """
    budgets.check_layers(
        [1, *(layer.units for layer in body.network.layers), 1], limits, ["body", "network"]
    )
    limit_names = (f"{kind}_examples", f"{kind}_parameters")
    max_examples, max_parameters = (getattr(limits, name) for name in limit_names)
    X = _matrix(body.X, ["body", "X"])
    m, n_inputs = X.shape
    if m > max_examples:
        raise PayloadTooLarge(
            f"{m} examples exceed the {limit_names[0]} limit of {max_examples}",
            errors=[(["body", "X"], f"at most {max_examples} examples ({limit_names[0]})")],
        )
    Y, classes = _targets_matrix(body, m)
    units = body.network.output.units
    if units is not None:
        task = "regression" if classes is None else "classification"
        activation = body.network.output.activation
        check_output_units(units, activation, task, Y.shape[1], ["body", "network"])
        if classes is not None and Y.shape[1] == 2:
            Y = Y[:, 1:]  # one sigmoid unit: y = 1 for the second class
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
    budgets.check_backprop(sizes, m, kind, limits)
    activations: list[str] = [layer.activation for layer in body.network.layers]
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
            W, b = weight_arrays(explicit, sizes, loc)
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
    labels: list[Any] = list(body.y)  # a vector here: the matrix case returned above
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
