"""Named errors the engine raises, so callers can record them precisely."""

from __future__ import annotations


class SpecError(ValueError):
    """A network or training spec the engine cannot build (bad name, shape or value)."""


class NonFiniteError(FloatingPointError):
    """Training produced a non-finite loss or non-finite weights.

    ``epoch`` is the 1-based epoch in which it was detected; ``what`` names the quantity.
    """

    def __init__(self, epoch: int, what: str = "training loss") -> None:
        self.epoch = epoch
        self.what = what
        super().__init__(
            f"non-finite {what} at epoch {epoch}; lower the learning rate or check the data"
        )
