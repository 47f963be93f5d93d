"""What one epoch of training reports, as the trainer yields it.

What the statistics mean:

- ``train_loss`` is the data part of J (the L2 term excluded, so it compares with
  ``val_loss``) averaged over the epoch's mini-batches, each at the weights before its
  own step — the usual running training loss; for full-batch training it is J's data part
  at the weights the epoch started from. ``train_accuracy`` is counted the same way.
- ``val_loss``/``val_accuracy`` are measured on the held-out split after the epoch.
- ``grad_norms[l]`` is ‖D^(l)‖ (Frobenius norm of the gradient in Θ layout: weights and
  bias) of the epoch's **last mini-batch**; ``update_ratios[l]`` is ‖ΔΘ^(l)‖/‖Θ^(l)‖ of
  that same last step (None where ‖Θ^(l)‖ was 0). Both only when ``record_grad_norms``.
- ``activation_stats`` (only when ``record_activations``) describes the same last
  mini-batch, one ``{layer, dead_fraction, saturated_fraction, mean, std}`` per non-input
  layer, input side first; ``recording`` defines each number. Recording changes no bit of
  the training.
- Early stopping and the plateau schedule watch ``val_loss``, or ``train_loss`` when
  there is no validation split.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any


@dataclass
class EpochStats:
    """What one epoch produced; see this module's docstring for the exact meanings."""

    epoch: int
    train_loss: float
    val_loss: float | None
    train_accuracy: float | None
    val_accuracy: float | None
    learning_rate: float
    grad_norms: list[float] | None
    update_ratios: list[float | None] | None
    seconds: float
    activation_stats: list[dict[str, Any]] | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def to_point(self) -> dict[str, Any]:
        """The epoch as a curve point: the API's shape, which ``diagnostics`` reads.

        ``grad_norms`` becomes ``{"D": [...], "update_ratio": [...]}`` (or None).
        """
        grad_norms = None
        if self.grad_norms is not None:
            grad_norms = {"D": self.grad_norms, "update_ratio": self.update_ratios}
        return {
            "epoch": self.epoch,
            "train_loss": self.train_loss,
            "val_loss": self.val_loss,
            "train_accuracy": self.train_accuracy,
            "val_accuracy": self.val_accuracy,
            "learning_rate": self.learning_rate,
            "grad_norms": grad_norms,
            "activation_stats": self.activation_stats,
            "seconds": self.seconds,
        }
