"""The run of one claimed job: load its data, train, flush progress, checkpoint, finish.

The database is the source of truth (docs/architecture.md, "Job lifecycle"); the claim
(``worker.runner``, or ``worker.groups`` for a group of tiny jobs) bumped ``attempt``:

- every write is fenced by that attempt; a write that loses the fence stops the run
  silently (another run owns the job now);
- curve points are buffered and flushed by time or count (always the last epoch); every
  flush extends the lease and reads the cancel flag, and a small thread keeps the lease
  alive during long epochs;
- a checkpoint (weights, optimizer, generator state, epoch) is written in the same
  transaction as the points it covers, so a resumed run continues where the stored curve
  ends and reproduces an uninterrupted run bit for bit.

No database session is held while computing: each write is one short transaction.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol, TypeVar

from celery.exceptions import SoftTimeLimitExceeded
from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError

from service import budgets, job_finish, job_progress, schedulers
from service.build import Prepared, prepare
from service.dispatch import Chosen
from service.job_claim import Claim
from service.job_progress import Pulse
from service.queue import dispatcher
from service.schemas.records import point_from_stats
from service.trained import model_meta, weights_npz
from worker import gradient_gate
from worker.datasets import DatasetUnavailable, load_dataset
from worker.lease import LeaseKeeper
from worker.nn import (
    NonFiniteError,
    SpecError,
    Trainer,
)
from worker.runtime import Runtime

log = logging.getLogger(__name__)

FLUSH_MAX_POINTS = 500  # flush at least this often, whatever the time
DB_PATIENCE_SECONDS = 60.0  # how long a final write waits for the database to come back
T = TypeVar("T")


class Outcome:
    """What ``run_job`` did, for logs and tests."""

    skipped = "skipped"  # not claimable: a duplicate delivery, or already finished
    succeeded = "succeeded"
    failed = "failed"
    cancelled = "cancelled"
    released = "released"  # warm shutdown: checkpointed and handed back to the queue
    lost = "lost"  # the fence moved: another run owns the job
    stopped = "stopped"  # the batch's scheduler stopped the trial (it ends cancelled)
    exploited = "exploited"  # PBT: the trial took another's checkpoint and was queued again
    trained = "trained"  # a run of a group: trained, its finish left to the group


class StopFlag(Protocol):
    def is_set(self) -> bool: ...


def check_gradients_before_training(prepared: Prepared, rt: Runtime, claim: Claim) -> None:
    """``training.gradient_check: true``: check backprop numerically before the first epoch.

    The report is stored on the job (fenced); a failed check fails the job with
    ``gradient_check_failed`` (see worker.gradient_gate).
    """
    training = prepared.spec.training
    if not training.gradient_check:
        return
    trainer, limits = prepared.trainer, rt.settings.limits
    report = gradient_gate.check_before_training(
        prepared.net,
        trainer.X_train,
        trainer.Y_train,
        training.l2,
        max_examples=limits.gradcheck_examples,
        max_parameters=limits.gradcheck_parameters,
        seed=training.seed,
    )
    if not job_progress.record_gradient_check(rt.factory, claim.job_id, claim.attempt, report):
        raise _Stop(Outcome.lost)
    if not report["passed"]:
        raise GradientCheckFailed(gradient_gate.failure_message(report))


class GradientCheckFailed(Exception):
    """The job asked for a gradient check and backprop did not match the numbers."""


class _Stop(Exception):
    """Ends the training loop early with an outcome already recorded."""

    def __init__(self, outcome: str) -> None:
        super().__init__(outcome)
        self.outcome = outcome


class MemoryLimit(Exception):
    """A run whose estimated peak memory is over the per-job limit."""


@dataclass
class Run:
    rt: Runtime
    claim: Claim
    stop: StopFlag
    time_limit: StopFlag
    buffer: list[dict[str, Any]] = field(default_factory=list)
    last_flush: float = field(default_factory=time.monotonic)
    last_checkpoint: float = field(default_factory=time.monotonic)
    checkpoint_epoch: int = 0
    retry_at: float = 0.0  # monotonic time before which a failed flush is not retried
    reporting: schedulers.Reporting | None = None  # the batch's scheduler, if any
    checkpointed: bool = False  # this run saved a checkpoint (the finish deletes it)
    flushed: bool = False  # this run wrote (or tried to write) points before its finish
    chosen: Chosen | None = None  # what the dispatch pass in the finish's transaction chose
    webhooks: bool = True  # the run's end may have written webhook deliveries
    # A run of a group of tiny jobs (worker.groups): trained, its finish left to the group
    # (``finishing``), and no lease thread (the group's claim leased every job of it).
    defer_finish: bool = False
    finishing: job_finish.Finishing | None = None
    epochs_run: int = 0

    def execute(self) -> str:
        keeper = LeaseKeeper(self.rt, self.claim)
        if not self.defer_finish:
            keeper.start()
        self.keeper = keeper
        try:
            return self._train()
        except _Stop as stopped:
            return stopped.outcome
        except SoftTimeLimitExceeded:
            limit = self.rt.settings.soft_time_limit_seconds
            return self._fail("time_limit", f"stopped after the time limit of {limit:g} s")
        except DatasetUnavailable as exc:
            return self._fail("dataset", str(exc), epoch=None)
        except NonFiniteError as exc:
            message = (
                f"training diverged at epoch {exc.epoch} (non-finite {exc.what}); "
                "lower the learning rate or check the data"
            )
            return self._fail("non_finite", message, epoch=exc.epoch)
        except GradientCheckFailed as exc:
            return self._fail("gradient_check_failed", str(exc), epoch=None)
        except SpecError as exc:
            return self._fail("internal", f"the engine rejected the spec: {exc}", epoch=None)
        except MemoryLimit as exc:
            return self._fail("memory_limit", str(exc), epoch=None)
        except MemoryError:  # numpy could not allocate: this job fails, the worker lives on
            log.exception("job=%s ran out of memory", self.job_id)
            limit = self.rt.settings.limits.job_memory_bytes
            message = f"ran out of memory (the per-job limit is {limit} bytes)"
            return self._fail("memory_limit", message, epoch=None)
        except (OperationalError, InterfaceError):
            # The database stayed away longer than our patience: leave the job running;
            # its lease expires and the reaper hands it to another run.
            log.exception("job=%s database unavailable; leaving it to the reaper", self.job_id)
            raise
        except DBAPIError as exc:
            if not exc.connection_invalidated:
                log.exception("job=%s failed unexpectedly", self.job_id)
                return self._fail("internal", f"{type(exc).__name__}: {exc}", epoch=None)
            # The server ended our session (e.g. idle in a transaction while this process
            # was frozen; see worker.runtime): an outage for this run, not the job's fault.
            log.exception("job=%s database session ended; leaving it to the reaper", self.job_id)
            raise
        except Exception as exc:
            log.exception("job=%s failed unexpectedly", self.job_id)
            return self._fail("internal", f"{type(exc).__name__}: {exc}", epoch=None)
        finally:
            keeper.stop()

    @property
    def job_id(self) -> str:
        return self.claim.job_id

    def _check_memory(self, prepared: Prepared) -> None:
        """The submit-time estimate again, on the data as loaded (a stored dataset's real
        size): over ``job_memory_bytes``, the job fails before training allocates."""
        training = self.claim.spec.get("training", {})
        sizes = list(prepared.net.layer_sizes)
        n_samples = int(prepared.data.n_samples)
        itemsize = 4 if training.get("dtype") == "float32" else 8
        rows = training.get("batch_size") or int(prepared.trainer.X_train.shape[0])
        peak = budgets.job_peak_bytes(sizes, n_samples, rows, itemsize)
        limit = self.rt.settings.limits.job_memory_bytes
        if peak > limit:
            raise MemoryLimit(
                f"the run would need about {peak} bytes; the per-job limit is {limit} "
                "(DELTAFLOW_MAX_JOB_MEMORY_BYTES): a smaller batch_size or network fits"
            )

    def _train(self) -> str:
        claim, rt = self.claim, self.rt
        dataset = claim.spec["dataset"]
        data = load_dataset(dataset, claim.tenant_id, rt.factory, rt.settings)
        validation = None
        if dataset.get("validation"):  # a named validation set, stored like the dataset
            validation = load_dataset(
                dataset["validation"], claim.tenant_id, rt.factory, rt.settings
            )
        prepared = prepare(claim.spec, data, validation)
        self._check_memory(prepared)
        trainer = prepared.trainer
        if claim.checkpoint is not None:
            if claim.checkpoint_adopted:  # PBT: another trial's state, this spec's settings
                trainer.adopt_state_bytes(claim.checkpoint)
            else:
                trainer.load_state_bytes(claim.checkpoint)
            self.checkpoint_epoch = trainer.epoch
        else:
            check_gradients_before_training(prepared, rt, claim)
        self.reporting = schedulers.reporting(rt.factory, claim)
        for stats in trainer.epochs():
            self.buffer.append(point_from_stats(stats))
            self._after_epoch(trainer)
        weights = weights_npz(prepared.net)
        meta = model_meta(
            prepared.net,
            task=prepared.data.task,
            classes=prepared.data.classes,
            standardization=prepared.standardization,
            stop_reason=trainer.stop_reason,
            epochs_run=trainer.epoch,
        )

        self.finishing = job_finish.Finishing(
            self.job_id,
            claim.attempt,
            self.buffer,
            weights,
            meta,
            checkpointed=claim.checkpoint is not None or self.checkpointed,
            first_write=claim.attempt == 1 and not self.flushed,
        )
        self.epochs_run = trainer.epoch
        if self.defer_finish:
            return Outcome.trained  # its group finishes it with the others (worker.groups)

        # The last points, the model, the finish and the next dispatch pass: one transaction
        # (job_finish.complete). A growing search's pass waits for its new trials (run_job).
        # If that transaction fails, the finish is retried alone (the pass may be what
        # failed; run_job then runs one of its own), patient with the database as always.
        def finish(dispatch: Callable[[Any], Chosen] | None) -> list[job_finish.Completed | None]:
            assert self.finishing is not None
            return job_finish.complete_many(rt.factory, [self.finishing], dispatch=dispatch)

        try:
            done = finish(None if claim.batch_growing else dispatcher(rt.settings).choose)
        except Exception:  # a failed pass never fails the run (it rolled back with it)
            log.warning("job=%s finish failed; retrying it alone", self.job_id, exc_info=True)
            done = self.patient(lambda: finish(None))
        return self.finished(done[0])

    def finished(self, done: job_finish.Completed | None) -> str:
        """The outcome of this run's finish (``job_finish.complete_many``), logged."""
        if done is None:
            return self._lost()
        self.buffer = []
        self.chosen, self.webhooks = done.chosen, done.webhooks
        if done.status == Outcome.cancelled:
            log.info("job=%s cancelled", self.job_id)
            return Outcome.cancelled
        log.info("job=%s succeeded epochs=%d", self.job_id, self.epochs_run)
        return Outcome.succeeded

    def _after_epoch(self, trainer: Trainer) -> None:
        """Flush, checkpoint, or stop between two epochs, as the policy and flags say."""
        settings = self.rt.settings
        if self.keeper.lost or self.keeper.lapsed():
            raise _Stop(self._lost())
        if trainer.stop_reason is not None:
            return  # the last epoch: flushed by _train together with the finish
        if self.time_limit.is_set():
            raise SoftTimeLimitExceeded()
        if self.stop.is_set():
            raise _Stop(self._release(trainer))
        if self.reporting is not None and self.reporting.due(trainer.epoch):
            return self._report(trainer)
        now = time.monotonic()
        checkpoint_due = (
            trainer.epoch - self.checkpoint_epoch >= settings.checkpoint_epochs
            or now - self.last_checkpoint >= settings.checkpoint_seconds
        )
        flush_due = (
            now - self.last_flush >= settings.flush_seconds
            or len(self.buffer) >= FLUSH_MAX_POINTS
            or self.keeper.cancel_requested
        )
        if not (checkpoint_due or flush_due) or now < self.retry_at:
            return
        state = (trainer.epoch, trainer.state_bytes()) if checkpoint_due else None
        try:
            pulse = self._flush(state)
        except (OperationalError, InterfaceError):
            log.warning("job=%s flush failed; keeping %d points", self.job_id, len(self.buffer))
            # Try again after another interval, not every epoch (a due checkpoint stays due).
            self.retry_at = now + settings.flush_seconds
            return
        if state is not None:
            self.checkpoint_epoch, self.last_checkpoint = trainer.epoch, now
        self._obey(pulse)

    def _report(self, trainer: Trainer) -> None:
        """A report epoch of the batch's scheduler: the points, the checkpoint (PBT) and the
        decision commit together; a stop or an exploit ends this run."""
        assert self.reporting is not None
        state = (trainer.epoch, trainer.state_bytes()) if self.reporting.checkpoints else None
        decide = self.reporting.at(trainer.epoch, self.claim.attempt)
        pulse = self.patient(lambda: self._flush(state, decide))
        if pulse.alive and state is not None:
            self.checkpoint_epoch, self.last_checkpoint = trainer.epoch, time.monotonic()
        action = pulse.decision.action if pulse.alive and pulse.decision else "continue"
        if action == "stop":
            log.info("job=%s stopped by its scheduler at epoch=%d", self.job_id, trainer.epoch)
            raise _Stop(Outcome.stopped)
        if action == "exploit":
            log.info("job=%s exploits job=%s", self.job_id, pulse.decision.parent)
            raise _Stop(Outcome.exploited)  # queued again: run_job's dispatch pass sends it
        self._obey(pulse)

    def _flush(
        self, checkpoint: tuple[int, bytes] | None, decide: Callable[[Any], Any] | None = None
    ) -> Pulse:
        self.flushed = True  # before the write: it may commit and still raise
        if checkpoint is not None:
            self.checkpointed = True
        pulse = job_progress.flush(
            self.rt.factory,
            self.job_id,
            self.claim.attempt,
            self.buffer,
            lease_seconds=self.rt.settings.lease_seconds,
            checkpoint=checkpoint,
            decide=decide,
        )
        if pulse.alive:
            self.buffer = []
            self.last_flush = time.monotonic()
            self.keeper.last_alive = self.last_flush
        return pulse

    def _obey(self, pulse: Pulse) -> None:
        if not pulse.alive:
            raise _Stop(self._lost())
        if pulse.cancel_requested or self.keeper.cancel_requested:
            done = self.patient(
                lambda: job_finish.finish_cancelled(
                    self.rt.factory, self.job_id, self.claim.attempt
                )
            )
            log.info("job=%s cancelled", self.job_id)
            raise _Stop(Outcome.cancelled if done else Outcome.lost)

    def _release(self, trainer: Trainer) -> str:
        """Warm shutdown: checkpoint what is done and hand the job back to the queue."""
        state = (trainer.epoch, trainer.state_bytes())
        pulse = self.patient(lambda: self._flush(state))
        if not pulse.alive:
            return self._lost()
        status = self.patient(
            lambda: job_finish.release(self.rt.factory, self.job_id, self.claim.attempt)
        )
        if status is None:
            return self._lost()
        log.info("job=%s released at epoch=%d status=%s", self.job_id, trainer.epoch, status)
        return Outcome.released

    def _fail(self, kind: str, message: str, epoch: int | None = None) -> str:
        if self.buffer:
            try:  # keep the epochs that did complete before the failure
                self._flush(None)
            except (OperationalError, InterfaceError):
                log.warning("job=%s could not flush the points before failing", self.job_id)
        error = {"type": kind, "message": message, "epoch": epoch}
        done = self.patient(
            lambda: job_finish.finish_failed(
                self.rt.factory, self.job_id, self.claim.attempt, error
            )
        )
        log.info("job=%s failed type=%s message=%s", self.job_id, kind, message)
        return Outcome.failed if done else Outcome.lost

    def _lost(self) -> str:
        log.info("job=%s attempt=%d lost its fence; stopping", self.job_id, self.claim.attempt)
        return Outcome.lost

    def patient(self, write: Callable[[], T]) -> T:
        """A write the run cannot skip: retry while the database is unreachable."""
        deadline = time.monotonic() + DB_PATIENCE_SECONDS
        pause = 0.2
        while True:
            try:
                return write()
            except (OperationalError, InterfaceError):
                if time.monotonic() + pause > deadline:
                    raise
                log.warning("job=%s database unavailable; retrying in %.1fs", self.job_id, pause)
                time.sleep(pause)
                pause = min(pause * 2, 5.0)
