"""Learning-rate schedules, applied between epochs.

A schedule is asked ``rate(epoch)`` before each (1-based) epoch and told the epoch's
monitored loss afterwards with ``observe(loss)`` (only ``plateau`` uses it). State is
saved and restored with ``state_dict()`` / ``load_state_dict()``.

- ``constant``: η0
- ``step``: η0 · γ^⌊(epoch - 1) / step_size⌋
- ``inverse_scaling``: η0 / epoch^power
- ``plateau``: multiply η by ``factor`` (not below ``min_lr``) once the monitored loss has
  not improved by more than ``min_delta`` for ``patience`` epochs in a row.
"""

from __future__ import annotations

from typing import Any


class Schedule:
    name = ""

    def __init__(self, learning_rate: float, **_: Any) -> None:
        self.initial_rate = float(learning_rate)

    def rate(self, epoch: int) -> float:
        return self.initial_rate

    def observe(self, loss: float) -> None:
        """Told the monitored loss after each epoch; most schedules ignore it."""

    def state_dict(self) -> dict[str, Any]:
        return {}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        return None

    def __repr__(self) -> str:
        return f"{type(self).__name__}(learning_rate={self.initial_rate})"


class Constant(Schedule):
    name = "constant"


class StepDecay(Schedule):
    name = "step"

    def __init__(
        self, learning_rate: float, step_size: int = 100, gamma: float = 0.5, **_: Any
    ) -> None:
        super().__init__(learning_rate)
        self.step_size = max(1, int(step_size))
        self.gamma = float(gamma)

    def rate(self, epoch: int) -> float:
        return self.initial_rate * self.gamma ** ((epoch - 1) // self.step_size)


class InverseScaling(Schedule):
    name = "inverse_scaling"

    def __init__(self, learning_rate: float, power: float = 0.5, **_: Any) -> None:
        super().__init__(learning_rate)
        self.power = float(power)

    def rate(self, epoch: int) -> float:
        return self.initial_rate / float(epoch) ** self.power


class Plateau(Schedule):
    name = "plateau"

    def __init__(
        self,
        learning_rate: float,
        factor: float = 0.5,
        patience: int = 10,
        min_delta: float = 1e-4,
        min_lr: float = 1e-6,
        **_: Any,
    ) -> None:
        super().__init__(learning_rate)
        self.factor = float(factor)
        self.patience = int(patience)
        self.min_delta = float(min_delta)
        self.min_lr = float(min_lr)
        self.current = self.initial_rate
        self.best: float | None = None
        self.wait = 0

    def rate(self, epoch: int) -> float:
        return self.current

    def observe(self, loss: float) -> None:
        if self.best is None or loss < self.best - self.min_delta:
            self.best = loss
            self.wait = 0
            return
        self.wait += 1
        if self.wait >= self.patience:
            self.current = max(self.current * self.factor, self.min_lr)
            self.wait = 0

    def state_dict(self) -> dict[str, Any]:
        return {"current": self.current, "best": self.best, "wait": self.wait}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.current = float(state["current"])
        self.best = None if state["best"] is None else float(state["best"])
        self.wait = int(state["wait"])


SCHEDULES: dict[str, type[Schedule]] = {
    cls.name: cls for cls in (Constant, StepDecay, InverseScaling, Plateau)
}
"""Name → schedule class; construct with (learning_rate, **spec parameters)."""


def make_schedule(spec: dict[str, Any] | None, learning_rate: float) -> Schedule:
    """A schedule from ``{"name": ..., **parameters}`` (None means constant)."""
    spec = dict(spec or {"name": "constant"})
    name = spec.pop("name", "constant")
    return SCHEDULES[name](learning_rate, **spec)
