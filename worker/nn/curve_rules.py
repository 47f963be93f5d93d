"""Diagnostic rules on the loss and accuracy curves: divergence, the learning rate,
overfitting and underfitting. Thresholds are explained in docs/diagnostics.md."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from .run_curve import (
    Curve,
    Finding,
    RunContext,
    end_value,
    lower_rate_advice,
    median,
    median_update_ratios,
    present,
)

MIN_EPOCHS = 10
"""Rules on the shape of the loss curve wait for this many epochs."""
DIVERGED_LOSS_FACTOR = 3.0
"""Training loss ending at this many times its first epoch's value has diverged."""
GIVE_BACK = 0.25
"""Learning rate too high: the loss climbed back by this share of what it had gained."""
MIN_PROGRESS = 0.05
"""...judged only when the best loss was at least this share below the first."""
STEADY_FALL_SHARE = 0.9
"""Learning rate too low: the loss fell in at least this share of the epochs, and ..."""
STILL_FALLING = 0.5
"""...its last quarter's drop was at least this share of its first quarter's."""
OVERFIT_GENERALIZATION_LOSS = 0.10
"""Overfitting: validation loss this far above its minimum (Prechelt's GL, as a share), ..."""
OVERFIT_TRAIN_DROP = 0.10
"""...while the training loss fell by at least this share since that minimum; ..."""
OVERFIT_MIN_RISE = 0.05
"""...a warning when the rise is this share of the first validation loss, else info."""
UNDERFIT_ACCURACY_SHARE = 0.5
"""Underfitting: training accuracy below chance + this share of the way to 100%, ..."""
PLATEAU = 0.1
"""...and the run's last quarter brought less than this share of its training-loss gain."""
UPDATE_RATIO_TARGET = 1e-3
"""Karpathy's rule of thumb for ‖ΔΘ‖/‖Θ‖ per step (shown as evidence)."""
UPDATE_RATIO_HIGH = 1e-1
"""A median update ratio above this (100× the target) says the steps are large (info)."""


def diverged(curve: Curve, ctx: RunContext, error: Mapping[str, Any] | None) -> list[Finding]:
    """A non-finite job or point, or a training loss that ended at ≥ 3× its first value."""
    lower = lower_rate_advice(ctx)
    if error is not None and error.get("type") == "non_finite":
        epoch = error.get("epoch")
        known = present(curve.train_loss)
        evidence = {"error": error.get("type"), "epoch": epoch}
        evidence["last_finite_train_loss"] = known[-1] if known else None
        message = (
            f"Training diverged at epoch {epoch}: the loss or the weights stopped being finite."
        )
        return [Finding("diverged", "error", f"{message} {lower}", evidence, epoch=epoch)]
    if curve.non_finite_epoch is not None:
        epoch = curve.non_finite_epoch
        message = f"The training loss is not a finite number from epoch {epoch}."
        return [Finding("diverged", "error", f"{message} {lower}", {"epoch": epoch}, epoch=epoch)]
    known = present(curve.train_loss)
    first, end = (known[0], end_value(known)) if len(known) >= 2 else (None, None)
    if first and end is not None and end >= DIVERGED_LOSS_FACTOR * first:
        epoch = next(
            e
            for e, loss in zip(curve.epochs, curve.train_loss, strict=True)
            if loss is not None and loss >= DIVERGED_LOSS_FACTOR * first
        )
        evidence = {
            "first_train_loss": first,
            "end_train_loss": end,
            "factor": end / first,
            "threshold": DIVERGED_LOSS_FACTOR,
        }
        message = (
            f"The training loss rose from {first:.3g} to {end:.3g} ({end / first:.3g}×): "
            "training diverged."
        )
        return [Finding("diverged", "error", f"{message} {lower}", evidence, epoch=epoch)]
    return []


def too_high(curve: Curve, ctx: RunContext) -> list[Finding]:
    """The loss gave back a quarter of its gain (warning); else very large steps (info)."""
    known = present(curve.train_loss)
    if len(known) >= MIN_EPOCHS and known[0] > 0:
        first, best, end = known[0], min(known), end_value(known)
        assert end is not None
        best_index = curve.train_loss.index(best)
        gained = first - best
        if gained >= MIN_PROGRESS * first and (end - best) / gained >= GIVE_BACK:
            epoch = curve.epochs[best_index]
            evidence = {
                "first_train_loss": first,
                "best_train_loss": best,
                "best_epoch": epoch,
                "end_train_loss": end,
                "given_back": (end - best) / gained,
                "threshold": GIVE_BACK,
            }
            message = (
                f"The training loss fell to {best:.3g} at epoch {epoch}, then climbed back to "
                f"{end:.3g}: the steps overshoot. {lower_rate_advice(ctx)}"
            )
            return [Finding("learning_rate_too_high", "warning", message, evidence, epoch=epoch)]
    ratios = median_update_ratios(curve)
    high = [r for r in ratios if r is not None and r >= UPDATE_RATIO_HIGH]
    if high:
        layer = ratios.index(max(high)) + 1
        steps: dict[str, Any] = {
            "median_update_ratios": ratios,
            "threshold": UPDATE_RATIO_HIGH,
            "rule_of_thumb": UPDATE_RATIO_TARGET,
        }
        message = (
            f"Each step changes layer {layer}'s weights by about {max(high):.0%} (around 0.1% "
            "is typical). The loss looks fine; if it turns noisy, lower the learning rate."
        )
        return [Finding("learning_rate_too_high", "info", message, steps, layer=layer)]
    return []


def too_low(curve: Curve, ctx: RunContext) -> list[Finding]:
    """A steady, still-falling loss: its last quarter drops about as much as its first."""
    losses = curve.train_loss
    if len(losses) < MIN_EPOCHS or any(loss is None for loss in losses):
        return []
    known = present(losses)
    n, quarter = len(known), len(known) // 4
    falls = sum(1 for a, b in zip(known, known[1:], strict=False) if b < a) / (n - 1)
    first_drop = known[0] - known[quarter]
    last_drop = known[n - 1 - quarter] - known[-1]
    if falls < STEADY_FALL_SHARE or first_drop <= 0 or last_drop < STILL_FALLING * first_drop:
        return []
    evidence: dict[str, Any] = {
        "epochs": n,
        "first_train_loss": known[0],
        "last_train_loss": known[-1],
        "falling_share": falls,
        "first_quarter_drop": first_drop,
        "last_quarter_drop": last_drop,
        "median_update_ratios": median_update_ratios(curve) or None,
        "rule_of_thumb": UPDATE_RATIO_TARGET,
    }
    rate = f" ({ctx.learning_rate:g})" if ctx.learning_rate else ""
    message = (
        f"After {n} epochs the training loss is still falling as fast as at the start "
        f"({known[0]:.3g} → {known[-1]:.3g}): the learning rate{rate} is probably too low. "
        "Try a rate 3–10× higher (the learning-rate finder suggests one), or train longer."
    )
    return [Finding("learning_rate_too_low", "warning", message, evidence)]


def overfitting(curve: Curve, ctx: RunContext) -> list[Finding]:
    """Validation loss up from its minimum (Prechelt's GL) while training loss kept falling."""
    val = curve.val_loss
    known = present(val)
    if len(known) < MIN_EPOCHS:
        return []
    best = min(known)
    index = val.index(best)
    end_val, end_train = end_value(val), end_value(curve.train_loss)
    train_then = curve.train_loss[index]
    if not best or end_val is None or end_train is None or train_then is None:
        return []
    rise = end_val / best - 1
    if rise < OVERFIT_GENERALIZATION_LOSS or end_train > (1 - OVERFIT_TRAIN_DROP) * train_then:
        return []
    epoch = curve.epochs[index]
    # A near-perfect model's tiny losses can double by moving a hundredth: the rise must
    # also be material on the scale of the problem, its first validation loss.
    material = end_val - best >= OVERFIT_MIN_RISE * known[0]
    evidence = {
        "best_val_loss": best,
        "best_epoch": epoch,
        "end_val_loss": end_val,
        "first_val_loss": known[0],
        "generalization_loss": rise,
        "threshold": OVERFIT_GENERALIZATION_LOSS,
        "train_loss_at_best": train_then,
        "end_train_loss": end_train,
    }
    message = (
        f"Validation loss rose {rise:.0%} above its minimum at epoch {epoch} while the "
        "training loss kept falling"
    )
    if ctx.early_stopping:
        message += ": early stopping keeps the weights of the best epoch."
        return [Finding("overfitting", "info", message, evidence, epoch=epoch)]
    if not material:
        message += f" (by {end_val - best:.2g}, little next to its first {known[0]:.2g})."
        message += f" Early stopping would keep the weights of epoch {epoch}."
        return [Finding("overfitting", "info", message, evidence, epoch=epoch)]
    message += (
        ": the network is memorising the training set. Use early stopping (the best epoch "
        f"was {epoch}), add L2 regularisation (e.g. 1e-3), use fewer units, or get more data."
    )
    return [Finding("overfitting", "warning", message, evidence, epoch=epoch)]


def underfitting(curve: Curve, ctx: RunContext, explained: bool) -> list[Finding]:
    """Accuracy nearer chance than 100% on a levelled-off curve (info when ``explained``)."""
    poor = poor_fit(curve, ctx)
    losses = curve.train_loss
    if poor is None or len(present(losses)) < MIN_EPOCHS:
        return []
    # The last quarter's gain (from a median of 3 epochs a quarter ago to the end) against
    # the gain of the whole run: a stalled curve brought almost nothing lately.
    n, quarter = len(losses), len(losses) // 4
    first = present(losses)[0]
    before, end = median(losses[max(n - quarter - 3, 0) : n - quarter]), end_value(losses)
    if before is None or end is None:
        return []
    gained, lately = first - end, before - end
    if gained > 0 and lately >= PLATEAU * gained:
        return []
    evidence = {**poor, "total_gain": gained, "last_quarter_gain": lately, "plateau": PLATEAU}
    message = (
        f"Training accuracy levelled off at {poor['end_train_accuracy']:.0%} "
        f"(chance is {poor['chance']:.0%}): the network cannot fit the training data."
    )
    if explained:
        message += " The other findings are the likely cause; fix those first."
        return [Finding("underfitting", "info", message, evidence)]
    message += " Try more or wider hidden layers, a nonlinear activation, or more epochs."
    return [Finding("underfitting", "warning", message, evidence)]


def poor_fit(curve: Curve, ctx: RunContext) -> dict[str, float] | None:
    """Evidence that training accuracy is closer to chance than to 100%, else None."""
    accuracy = end_value(curve.train_accuracy)
    if ctx.task != "classification" or not ctx.n_classes or accuracy is None:
        return None
    chance = 1 / ctx.n_classes
    bar = chance + UNDERFIT_ACCURACY_SHARE * (1 - chance)
    if accuracy >= bar:
        return None
    return {"end_train_accuracy": accuracy, "chance": chance, "accuracy_bar": bar}
