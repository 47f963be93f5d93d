"""The training loop: it yields per-epoch statistics and never persists anything itself.

``Trainer(net, X, Y, config).epochs()`` is a generator of ``EpochStats``. Between two
epochs the caller may persist the stats, stop, or save ``state_bytes()``; a new trainer
with ``load_state_bytes(blob)`` continues bit for bit as if never interrupted (weights,
optimizer state, generator state, schedule, early-stopping state and best weights are all
in the blob).

What the statistics mean is in ``epoch_stats``.
"""

from __future__ import annotations

import io
import json
import math
import time
from collections.abc import Iterator
from typing import Any, cast

import numpy as np

from ._types import Array
from .config import TrainingConfig
from .epoch_stats import EpochStats
from .errors import NonFiniteError
from .examples import class_labels, count_correct, split_validation
from .network import Network
from .optimizers import Optimizer, make_optimizer
from .recording import LastBatchRecorder, Recorded
from .schedules import Schedule, make_schedule

_STATE_FORMAT = 1
_NOTHING_RECORDED = Recorded(None, None, None)


class Trainer:
    """Trains ``net`` in place on (X, Y).

    Parameters
    ----------
    net : Network (its dtype decides the dtype of everything)
    X : ndarray of shape (n_samples, n_in)
    Y : ndarray of shape (n_samples, K): one-hot rows for classification, targets otherwise
    config : TrainingConfig
    validation : (X_val, Y_val) or None
        A validation set of its own (same columns as X and Y); then nothing of (X, Y) is
        split off. Otherwise ``config.validation_split`` of (X, Y) is, stratified by class
        for classification.
    """

    def __init__(
        self,
        net: Network,
        X: Array,
        Y: Array,
        config: TrainingConfig,
        validation: tuple[Array, Array] | None = None,
    ) -> None:
        self.net = net
        self.config = config
        X = net.as_input(X)
        Y = net.as_target(Y, X.shape[0])
        self._rng = np.random.default_rng(config.seed)
        X_val: Array | None
        self.Y_val: Array | None
        if validation is not None:
            X_train, self.Y_train = X, Y
            X_val = net.as_input(validation[0])
            self.Y_val = net.as_target(validation[1], X_val.shape[0])
        else:
            labels = class_labels(Y) if config.classification and config.stratify else None
            X_train, self.Y_train, X_val, self.Y_val = split_validation(
                X, Y, config.validation_split, self._rng, labels
            )
        self.batch_size = config.effective_batch_size(X_train.shape[0])
        # The network's hot path takes one column per example. The targets are transposed
        # once here; so are the inputs that are used whole every epoch (full-batch
        # training, validation), because BLAS reads a contiguous Xᵀ faster than the view
        # X.T. Mini-batches are gathered by rows and passed as the view Xb.T.
        self._YT_train = np.ascontiguousarray(self.Y_train.T)
        self._YT_val = None if self.Y_val is None else np.ascontiguousarray(self.Y_val.T)
        self.X_train = X_train
        self.X_val = X_val
        self._labels_train = class_labels(self.Y_train) if config.classification else None
        self._labels_val = (
            class_labels(self.Y_val) if config.classification and self.X_val is not None else None
        )
        self.optimizer: Optimizer = make_optimizer(
            config.optimizer,
            learning_rate=config.learning_rate,
            momentum=config.momentum,
            beta1=config.beta1,
            beta2=config.beta2,
            epsilon=config.epsilon,
        )
        self.schedule: Schedule = make_schedule(config.lr_schedule, config.learning_rate)
        self.epoch = 0
        self.stop_reason: str | None = None
        # The optimizer works on the network's one flat parameter and gradient vectors.
        self._params = [net.flat_parameters]
        self._grads = [net.flat_gradients]
        self._best_loss: float | None = None
        self._best_params: list[Array] | None = None
        self._wait = 0
        self._batch_buffers: dict[int, tuple[Array, Array]] = {}
        # Only built when something is recorded: otherwise the loop never looks at it again.
        self._recorder = (
            LastBatchRecorder(
                net,
                self.optimizer,
                self._params,
                self._grads,
                grad_norms=config.record_grad_norms,
                activations=config.record_activations,
            )
            if config.record_grad_norms or config.record_activations
            else None
        )

    # The inputs may be replaced after construction (the worker standardizes them with
    # the training split's statistics); the setters keep the transposed copies in step.

    @property
    def X_train(self) -> Array:
        """Training inputs, (n_train, n_in)."""
        return self._X_train

    @X_train.setter
    def X_train(self, X: Array) -> None:
        X = self.net.as_input(X)
        if X.shape[0] != self.Y_train.shape[0]:
            raise ValueError(f"X_train needs {self.Y_train.shape[0]} rows, got {X.shape[0]}")
        self._X_train = X
        full_batch = self.batch_size >= X.shape[0]
        self._XT_train = np.ascontiguousarray(X.T) if full_batch else None

    @property
    def X_val(self) -> Array | None:
        """Validation inputs, (n_val, n_in), or None without a validation split."""
        return self._X_val

    @X_val.setter
    def X_val(self, X: Array | None) -> None:
        if (X is None) != (self.Y_val is None):
            raise ValueError("X_val must be given exactly when there is a validation split")
        self._X_val = None if X is None else self.net.as_input(X)
        if self._X_val is not None and self.Y_val is not None:
            if self._X_val.shape[0] != self.Y_val.shape[0]:
                raise ValueError(f"X_val needs {self.Y_val.shape[0]} rows")
        self._XT_val = None if self._X_val is None else np.ascontiguousarray(self._X_val.T)

    # ------------------------------------------------------------------ the loop

    def epochs(self) -> Iterator[EpochStats]:
        """Run the remaining epochs, yielding each one's statistics when it is complete.

        ``stop_reason`` is set before the last epoch's stats are yielded; when early
        stopping fires, the best weights are already restored at that point.
        """
        if self.stop_reason is None and self.epoch >= self.config.epochs:
            self.stop_reason = "epochs"
        while self.stop_reason is None:
            yield self._run_epoch()

    def _run_epoch(self) -> EpochStats:
        started = time.perf_counter()
        self.epoch += 1
        epoch = self.epoch
        learning_rate = self.schedule.rate(epoch)
        self.optimizer.learning_rate = learning_rate
        with np.errstate(all="ignore"):  # blow-ups are detected below and raised by name
            train_loss, correct, recorded = self._train_one_epoch()
            val_loss, val_accuracy = self._validate()
        n_train = self.X_train.shape[0]
        if not math.isfinite(train_loss):
            raise NonFiniteError(epoch, "training loss")
        if not self._weights_finite():
            raise NonFiniteError(epoch, "weights")
        if val_loss is not None and not math.isfinite(val_loss):
            raise NonFiniteError(epoch, "validation loss")
        monitored = train_loss if val_loss is None else val_loss
        self.schedule.observe(monitored)
        self._early_stopping(monitored)
        if self.stop_reason is None and epoch >= self.config.epochs:
            self.stop_reason = "epochs"
        return EpochStats(
            epoch=epoch,
            train_loss=train_loss,
            val_loss=val_loss,
            train_accuracy=None if correct is None else correct / n_train,
            val_accuracy=val_accuracy,
            learning_rate=learning_rate,
            grad_norms=recorded.grad_norms,
            update_ratios=recorded.update_ratios,
            seconds=time.perf_counter() - started,
            activation_stats=recorded.activation_stats,
        )

    def _train_one_epoch(self) -> tuple[float, int | None, Recorded]:
        net, X, YT, labels = self.net, self.X_train, self._YT_train, self._labels_train
        n, size, l2 = X.shape[0], self.batch_size, self.config.l2
        recorder = self._recorder
        recorded = _NOTHING_RECORDED
        if self._XT_train is not None:  # full batch: no gather, no shuffle
            loss_sum = net.loss_and_gradients_cols(self._XT_train, YT, l2) * n
            correct = None if labels is None else count_correct(net.last_output_cols(n), labels)
            if recorder is not None:
                recorded = recorder.step(n)
            else:
                self.optimizer.step(self._params, self._grads)
            return loss_sum / n, correct, recorded
        order = self._rng.permutation(n)
        loss_sum = 0.0
        correct_sum = 0
        starts = range(0, n, size)
        last_start = starts[-1]
        for start in starts:
            index = order[start : start + size]
            m = index.shape[0]
            Xb, YTb = self._batch_buffer(m)
            np.take(X, index, axis=0, out=Xb)  # gather rows, then use the free view Xb.T
            np.take(YT, index, axis=1, out=YTb)
            loss_sum += net.loss_and_gradients_cols(Xb.T, YTb, l2) * m
            if labels is not None:
                correct_sum += count_correct(net.last_output_cols(m), labels[index])
            if recorder is not None and start == last_start:
                recorded = recorder.step(m)
            else:
                self.optimizer.step(self._params, self._grads)
        return loss_sum / n, None if labels is None else correct_sum, recorded

    def _validate(self) -> tuple[float | None, float | None]:
        if self._XT_val is None or self._YT_val is None:
            return None, None
        output, loss = self.net.output_and_loss_cols(self._XT_val, self._YT_val)
        if self._labels_val is None:
            return loss, None
        return loss, count_correct(output, self._labels_val) / self._XT_val.shape[1]

    def _early_stopping(self, monitored: float) -> None:
        rule = self.config.early_stopping
        if rule is None:
            return
        if self._best_loss is None or monitored < self._best_loss - rule.min_delta:
            self._best_loss = monitored
            self._wait = 0
            self._best_params = [p.copy() for p in self._params]
            return
        self._wait += 1
        if self._wait >= rule.patience:
            if self._best_params is not None:
                for target, best in zip(self._params, self._best_params, strict=True):
                    np.copyto(target, best)
            self.stop_reason = "early_stopping"

    # ------------------------------------------------------------------ helpers

    def _batch_buffer(self, m: int) -> tuple[Array, Array]:
        buffers = self._batch_buffers.get(m)
        if buffers is None:
            dtype = self.net.dtype
            buffers = (
                np.empty((m, self.X_train.shape[1]), dtype=dtype),
                np.empty((self.Y_train.shape[1], m), dtype=dtype),
            )
            self._batch_buffers[m] = buffers
        return buffers

    def _weights_finite(self) -> bool:
        # A sum is non-finite if any term is (or if the weights are astronomically large).
        return math.isfinite(float(self.net.flat_parameters.sum()))

    # ------------------------------------------------------------------ resume

    def state_bytes(self) -> bytes:
        """Everything needed to resume bit for bit, as an NPZ blob (no pickles)."""
        arrays: dict[str, Array] = {f"param_{i}": p for i, p in enumerate(self._params)}
        optimizer_state = self.optimizer.state_dict()
        scalars: dict[str, Any] = {}
        for key, value in optimizer_state.items():
            if isinstance(value, list):
                for i, array in enumerate(value):
                    arrays[f"opt_{key}_{i}"] = array
                scalars[key] = {"arrays": len(value)}
            else:
                scalars[key] = value
        if self._best_params is not None:
            arrays.update({f"best_{i}": p for i, p in enumerate(self._best_params)})
        meta = {
            "format": _STATE_FORMAT,
            "layer_sizes": self.net.layer_sizes,
            "dtype": self.net.dtype.name,
            "epoch": self.epoch,
            "stop_reason": self.stop_reason,
            "rng": self._rng.bit_generator.state,
            "optimizer": scalars,
            "schedule": self.schedule.state_dict(),
            "early_stopping": {
                "best_loss": self._best_loss,
                "wait": self._wait,
                "has_best": self._best_params is not None,
            },
        }
        arrays["meta"] = np.frombuffer(json.dumps(meta).encode(), dtype=np.uint8)
        buffer = io.BytesIO()
        np.savez(buffer, **cast(dict[str, Any], arrays))
        return buffer.getvalue()

    def adopt_state_bytes(self, blob: bytes) -> None:
        """Take another run's state, as population based training's *exploit* does: its
        weights, optimizer moments (Adam's m, v and step; momentum's velocity), generator,
        epoch and early-stopping state, but this trainer's own hyperparameters — the
        optimizer's from this config, and the learning-rate schedule started afresh at the
        current epoch (a plateau schedule forgets its patience)."""
        self.load_state_bytes(blob)
        config = self.config
        for name in ("momentum", "beta1", "beta2", "epsilon"):
            if hasattr(self.optimizer, name):
                setattr(self.optimizer, name, float(getattr(config, name)))
        self.optimizer.learning_rate = config.learning_rate
        self.schedule = make_schedule(config.lr_schedule, config.learning_rate)

    def load_state_bytes(self, blob: bytes) -> None:
        """Restore a state saved by ``state_bytes()`` into this trainer and its network."""
        with np.load(io.BytesIO(blob), allow_pickle=False) as archive:
            arrays = {name: archive[name] for name in archive.files}
        meta = json.loads(arrays.pop("meta").tobytes().decode())
        if meta.get("format") != _STATE_FORMAT:
            raise ValueError(f"unknown trainer state format {meta.get('format')!r}")
        if meta["layer_sizes"] != self.net.layer_sizes or meta["dtype"] != self.net.dtype.name:
            raise ValueError(
                f"state is for {meta['layer_sizes']} {meta['dtype']}, "
                f"network is {self.net.layer_sizes} {self.net.dtype.name}"
            )
        for i, p in enumerate(self._params):
            np.copyto(p, arrays[f"param_{i}"])
        optimizer_state: dict[str, Any] = {}
        for key, value in meta["optimizer"].items():
            if isinstance(value, dict) and "arrays" in value:
                optimizer_state[key] = [arrays[f"opt_{key}_{i}"] for i in range(value["arrays"])]
            else:
                optimizer_state[key] = value
        self.optimizer.load_state_dict(optimizer_state)
        self.schedule.load_state_dict(meta["schedule"])
        self._rng.bit_generator.state = meta["rng"]
        self.epoch = int(meta["epoch"])
        self.stop_reason = meta["stop_reason"]
        early = meta["early_stopping"]
        self._best_loss = early["best_loss"]
        self._wait = int(early["wait"])
        self._best_params = (
            [arrays[f"best_{i}"].copy() for i in range(len(self._params))]
            if early["has_best"]
            else None
        )
