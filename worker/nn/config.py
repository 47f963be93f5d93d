"""What a training run is configured with: ``TrainingConfig`` and ``EarlyStopping``.

The defaults equal the API's (``service.schemas.spec.TrainingSpec``; tests/worker/
test_build.py proves it). ``from_spec`` reads a dict shaped like the API's training spec
(a notebook's shorthand); the worker passes every field itself (``service.build``).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from .errors import SpecError
from .optimizers import OPTIMIZERS
from .schedules import SCHEDULES

DEFAULT_SGD_BATCH_SIZE = 32
"""Mini-batch size of ``sgd`` when the spec leaves ``batch_size`` null (others: full batch)."""


@dataclass(frozen=True)
class EarlyStopping:
    patience: int = 20
    min_delta: float = 1e-4


@dataclass(frozen=True)
class TrainingConfig:
    """Everything the trainer needs besides the network and the data.

    The defaults equal the API's (``TrainingSpec``; tests/worker/test_build.py proves it);
    the worker itself passes every field (``service.build``).
    """

    optimizer: str = "adam"
    learning_rate: float = 0.01
    momentum: float = 0.9
    beta1: float = 0.9
    beta2: float = 0.999
    epsilon: float = 1e-8
    epochs: int = 100
    batch_size: int | None = None
    l2: float = 0.0
    seed: int = 0
    early_stopping: EarlyStopping | None = None
    lr_schedule: dict[str, Any] = field(default_factory=lambda: {"name": "constant"})
    validation_split: float = 0.0
    classification: bool = True
    # Draw the validation split class by class (the service always does; off by default
    # here so a notebook's earlier splits, and the tests pinned to them, stay as they were).
    stratify: bool = False
    record_grad_norms: bool = False
    record_activations: bool = False

    def __post_init__(self) -> None:
        if self.optimizer not in OPTIMIZERS:
            raise SpecError(
                f"unknown optimizer {self.optimizer!r}; choose from {sorted(OPTIMIZERS)}"
            )
        schedule = self.lr_schedule.get("name", "constant")
        if schedule not in SCHEDULES:
            raise SpecError(f"unknown lr schedule {schedule!r}; choose from {sorted(SCHEDULES)}")
        if self.epochs < 0 or (self.batch_size is not None and self.batch_size < 1):
            raise SpecError("epochs must be >= 0 and batch_size >= 1 (or null)")
        if not 0.0 <= self.validation_split < 1.0:
            raise SpecError("validation_split must be in [0, 1)")
        if not self.learning_rate > 0 or self.l2 < 0:
            raise SpecError("learning_rate must be > 0 and l2 >= 0")

    @classmethod
    def from_spec(
        cls,
        training: Mapping[str, Any],
        validation_split: float = 0.0,
        classification: bool = True,
    ) -> TrainingConfig:
        """From a training spec dict like the API's (a notebook's shorthand); what it leaves
        out takes this class's defaults."""
        optimizer = dict(training.get("optimizer") or {})
        early = training.get("early_stopping")
        record = training.get("record") or {}
        default = cls()
        stopping = EarlyStopping()
        return cls(
            optimizer=str(optimizer.get("name", default.optimizer)),
            learning_rate=float(optimizer.get("learning_rate", default.learning_rate)),
            momentum=float(optimizer.get("momentum", default.momentum)),
            beta1=float(optimizer.get("beta1", default.beta1)),
            beta2=float(optimizer.get("beta2", default.beta2)),
            epsilon=float(optimizer.get("epsilon", default.epsilon)),
            epochs=int(training.get("epochs", default.epochs)),
            batch_size=None if training.get("batch_size") is None else int(training["batch_size"]),
            l2=float(training.get("l2", default.l2)),
            seed=int(training.get("seed", default.seed)),
            early_stopping=None
            if early is None
            else EarlyStopping(
                patience=int(early.get("patience", stopping.patience)),
                min_delta=float(early.get("min_delta", stopping.min_delta)),
            ),
            lr_schedule=dict(training.get("lr_schedule") or default.lr_schedule),
            validation_split=float(validation_split),
            classification=bool(classification),
            record_grad_norms=bool(record.get("grad_norms", default.record_grad_norms)),
            record_activations=bool(record.get("activations", default.record_activations)),
        )

    def effective_batch_size(self, n_train: int) -> int:
        if self.batch_size is not None:
            return min(self.batch_size, n_train)
        if self.optimizer == "sgd":
            return min(DEFAULT_SGD_BATCH_SIZE, n_train)
        return n_train
