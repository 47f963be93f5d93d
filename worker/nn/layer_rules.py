"""Diagnostic rules on the recorded gradients and activations: vanishing and exploding
gradients, dead ReLUs, saturated units. Thresholds are explained in docs/diagnostics.md."""

from __future__ import annotations

import statistics
from typing import Any

from .curve_rules import poor_fit
from .run_curve import Curve, Finding, RunContext, lower_rate_advice, median, ratio

GRADIENT_WINDOW = 3
"""Gradients across depth are judged on the median of the first 3 recorded epochs."""
VANISHING_RATIO = 1e-2
"""Vanishing: a layer's ‖D‖ below this fraction of the output layer's."""
EXPLODING_RATIO = 1e2
"""Exploding across depth: a layer's ‖D‖ above this multiple of the output layer's."""
EXPLODING_GROWTH = 1e2
"""Exploding over time: a layer's ‖D‖ grew this many times its first value, loss no better."""
COMPENSATED_UPDATES = 1e-1
"""Vanishing is only info when the update ratios stay within this factor across depth."""
ACTIVATION_WINDOW = 5
"""Activation rules use the first or last 5 recorded epochs."""
DEAD_WARNING, DEAD_INFO = 0.5, 0.25
"""Dead units in a layer (min over the last epochs): warning, info; all of them: error."""
SATURATED_WARNING, SATURATED_INFO = 0.5, 0.25
"""Saturated units in a hidden layer (median over the first or last epochs)."""


def gradients(curve: Curve, ctx: RunContext) -> list[Finding]:
    """Vanishing or exploding across depth at the start, and exploding over time."""
    if not curve.gradients:
        return []
    findings = _across_depth(curve, ctx)
    if not any(f.code == "exploding_gradients" for f in findings):  # one card per cause
        findings += _growing_gradients(curve, ctx)
    return findings


def _across_depth(curve: Curve, ctx: RunContext) -> list[Finding]:
    """Each layer's ‖D‖ against the output layer's, in the first recorded epochs."""
    rows = [(e, D, U) for e, D, U in curve.gradients if len(D) >= 2 and D[-1]]
    if not rows:
        return []
    findings = []
    window = rows[:GRADIENT_WINDOW]
    n_layers = len(window[0][1])
    depth = [
        median([ratio(D[k], D[-1]) for _, D, _ in window if len(D) == n_layers])
        for k in range(n_layers - 1)
    ]
    evidence: dict[str, Any] = {
        "epochs": [e for e, _, _ in window],
        "grad_norms": [median([D[k] for _, D, _ in window]) for k in range(n_layers)],
        "ratios_to_output_layer": depth,
    }
    known = [(r, k + 1) for k, r in enumerate(depth) if r is not None]
    if known and min(known)[0] <= VANISHING_RATIO:
        smallest, layer = min(known)
        updates = median([ratio(U[0], U[-1]) for _, _, U in window if len(U) == n_layers])
        severity = "info" if updates is not None and updates >= COMPENSATED_UPDATES else "warning"
        evidence |= {"threshold": VANISHING_RATIO, "update_ratio_first_to_last": updates}
        message = (
            f"At the start of training layer {layer}'s gradient was {smallest:.1e} of the output "
            f"layer's: δ shrinks on its way back, so the early layers barely learn. "
            + _vanishing_advice(ctx, severity)
        )
        findings.append(
            Finding("vanishing_gradients", severity, message, evidence, layer, window[0][0])
        )
    elif known and max(known)[0] >= EXPLODING_RATIO:
        largest, layer = max(known)
        message = (
            f"At the start of training layer {layer}'s gradient was {largest:.0f}× the output "
            "layer's: δ grows on its way back. Use glorot or he initialisation, standardize "
            "the inputs, or lower the learning rate."
        )
        evidence |= {"threshold": EXPLODING_RATIO}
        findings.append(
            Finding("exploding_gradients", "warning", message, evidence, layer, window[0][0])
        )
    return findings


def _growing_gradients(curve: Curve, ctx: RunContext) -> list[Finding]:
    """A layer's ‖D‖ grew EXPLODING_GROWTH-fold over the run while the loss got no better."""
    losses = dict(zip(curve.epochs, curve.train_loss, strict=True))
    first_loss = next((loss for loss in curve.train_loss if loss is not None), None)
    worst: tuple[float, int, int, float] | None = None
    n_layers = len(curve.gradients[0][1])
    for k in range(n_layers):
        series = [(e, D[k]) for e, D, _ in curve.gradients if len(D) == n_layers]
        known = [(e, d) for e, d in series if d is not None]
        base = next((d for _, d in known if d > 0), None)
        if base is None:
            continue
        peak_epoch, peak = max(known, key=lambda point: point[1])
        growth = peak / base
        loss = losses.get(peak_epoch)
        no_better = first_loss is None or loss is None or loss >= first_loss
        if growth >= EXPLODING_GROWTH and no_better:
            if worst is None or growth > worst[0]:
                worst = (growth, k + 1, peak_epoch, peak)
    if worst is None:
        return []
    growth, layer, epoch, peak = worst
    evidence = {"growth": growth, "peak_grad_norm": peak, "threshold": EXPLODING_GROWTH}
    message = (
        f"Layer {layer}'s gradient grew {growth:.0e}× by epoch {epoch} while the loss got no "
        f"better: the weights are being thrown around. {lower_rate_advice(ctx)}"
    )
    return [Finding("exploding_gradients", "warning", message, evidence, layer, epoch)]


def activations(curve: Curve, ctx: RunContext) -> list[Finding]:
    """Dead units in relu/leaky layers; saturated units in hidden sigmoid/tanh layers."""
    rows = curve.activations
    if not rows:
        return []
    n_layers = len(rows[-1][1])
    findings = []
    for k in range(n_layers):
        series = [(e, stats[k]) for e, stats in rows if len(stats) == n_layers]
        dead = [(e, s.get("dead_fraction")) for e, s in series]
        finding = _dead(k + 1, [(e, v) for e, v in dead if v is not None], ctx)
        if finding is None and k < n_layers - 1:  # a saturated output is a confident one
            sat = [(e, s.get("saturated_fraction")) for e, s in series]
            finding = _saturated(k + 1, [(e, v) for e, v in sat if v is not None], curve, ctx)
        if finding is not None:
            findings.append(finding)
    return findings


def _dead(layer: int, series: list[tuple[int, float]], ctx: RunContext) -> Finding | None:
    if not series:
        return None
    last = min(v for _, v in series[-ACTIVATION_WINDOW:])
    if last >= 1.0:
        severity, bar = "error", 1.0
    elif last >= DEAD_WARNING:
        severity, bar = "warning", DEAD_WARNING
    elif last >= DEAD_INFO:
        severity, bar = "info", DEAD_INFO
    else:
        return None
    since = _streak_start(series, bar)
    name = _layer_name(ctx, layer)
    evidence = {"dead_fraction": last, "since_epoch": since, "threshold": bar}
    what = "all" if last >= 1.0 else f"{last:.0%}"
    message = (
        f"{what.capitalize()} of the units in {name} have been dead since epoch {since}: never "
        "active on a batch, they output 0 and get no gradient."
    )
    if severity != "info":
        message += (
            " Lower the learning rate, use he initialisation with zero biases, or try leaky_relu."
        )
    return Finding("dead_relu", severity, message, evidence, layer, since)


def _saturated(
    layer: int, series: list[tuple[int, float]], curve: Curve, ctx: RunContext
) -> Finding | None:
    if not series:
        return None
    early = statistics.median(v for _, v in series[:ACTIVATION_WINDOW])
    late = statistics.median(v for _, v in series[-ACTIVATION_WINDOW:])
    name = _layer_name(ctx, layer)
    evidence: dict[str, Any] = {"early": early, "late": late}
    advice = " Standardize the inputs, use glorot initialisation, or lower the learning rate."
    if early >= SATURATED_WARNING:
        evidence["threshold"] = SATURATED_WARNING
        message = (
            f"{early:.0%} of the units in {name} were saturated from the first epochs (|tanh| "
            "> 0.99 or sigmoid near 0 or 1 on most examples): they pass almost no gradient."
        )
        return Finding(
            "saturated_units", "warning", message + advice, evidence, layer, series[0][0]
        )
    if late >= SATURATED_WARNING:
        since = _streak_start(series, SATURATED_WARNING)
        poor = poor_fit(curve, ctx)
        evidence |= {"threshold": SATURATED_WARNING, "since_epoch": since}
        message = f"{late:.0%} of the units in {name} have been saturated since epoch {since}."
        if poor is None:
            message += " The network fits well, so it is probably just confident."
            return Finding("saturated_units", "info", message, evidence, layer, since)
        evidence |= poor
        message += " They pass almost no gradient, and training has stalled." + advice
        return Finding("saturated_units", "warning", message, evidence, layer, since)
    if early >= SATURATED_INFO:
        evidence["threshold"] = SATURATED_INFO
        message = f"{early:.0%} of the units in {name} started out saturated."
        return Finding("saturated_units", "info", message, evidence, layer, series[0][0])
    return None


def _streak_start(series: list[tuple[int, float]], bar: float) -> int:
    """The first epoch of the final run of values at or above ``bar``."""
    start = series[-1][0]
    for epoch, value in reversed(series):
        if value < bar:
            break
        start = epoch
    return start


def _layer_name(ctx: RunContext, layer: int) -> str:
    if 0 < layer <= len(ctx.activations):
        return f"layer {layer} ({ctx.activations[layer - 1]})"
    return f"layer {layer}"


def _vanishing_advice(ctx: RunContext, severity: str) -> str:
    if severity == "info":
        return f"{ctx.optimizer} scales each weight's step, so the updates still get there."
    if any(name in ("sigmoid", "tanh") for name in ctx.activations[:-1]):
        return (
            "Try relu with he initialisation (or tanh with glorot) instead of sigmoid, fewer "
            "layers, or the adam optimizer."
        )
    return "Check for dead units, use he initialisation, fewer layers, or the adam optimizer."
