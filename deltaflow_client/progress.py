"""What ``wait`` shows while it polls: a ``\\r`` bar on a terminal, plain lines elsewhere.

On a terminal the bar is redrawn in place on every change; in a log (stderr not a tty)
one line is written per change of status, so a CI log shows queued → running →
succeeded without thousands of bar frames.
"""

from __future__ import annotations

import sys
from typing import Any, TextIO

BAR_WIDTH = 30


def bar(fraction: float, width: int = BAR_WIDTH) -> str:
    filled = int(round(max(0.0, min(fraction, 1.0)) * width))
    return "[" + "#" * filled + "." * (width - filled) + "]"


def _number(value: Any, spec: str) -> str | None:
    return format(value, spec) if isinstance(value, int | float) else None


def job_line(job: dict[str, Any]) -> str:
    """``[####......]  epoch 40/300  loss 0.6931  acc 0.812  eta 12s  running``."""
    progress = job.get("progress") or {}
    metrics = job.get("metrics") or {}
    parts = [
        bar(float(progress.get("fraction") or 0.0)),
        f"epoch {progress.get('epoch', 0)}/{progress.get('epochs', '?')}",
    ]
    loss = _number(metrics.get("train_loss"), ".4f")
    if loss is not None:
        parts.append(f"loss {loss}")
    accuracy = metrics.get("val_accuracy", metrics.get("train_accuracy"))
    if _number(accuracy, ".3f") is not None:
        parts.append(f"acc {accuracy:.3f}")
    eta = progress.get("eta_seconds")
    if isinstance(eta, int | float) and job.get("status") == "running":
        parts.append(f"eta {eta:.0f}s")
    parts.append(str(job.get("status", "?")))
    return "  ".join(parts)


def batch_line(batch: dict[str, Any]) -> str:
    """``[####......]  3/6 finished  running 2  best 0.1234 (val_loss)``."""
    progress = batch.get("progress") or {}
    counts = batch.get("counts") or {}
    parts = [
        bar(float(progress.get("fraction") or 0.0)),
        f"{progress.get('finished', 0)}/{progress.get('total', '?')} finished",
    ]
    parts += [
        f"{name} {counts[name]}" for name in ("running", "queued", "failed") if counts.get(name)
    ]
    best = batch.get("best")
    if isinstance(best, dict) and _number(best.get("value"), ".4g") is not None:
        parts.append(f"best {best['value']:.4g} ({batch.get('metric', '?')})")
    return "  ".join(parts)


class Progress:
    """Draws successive states of one job or batch on ``stream``."""

    def __init__(self, stream: TextIO, *, terminal: bool) -> None:
        self.stream = stream
        self.terminal = terminal
        self._width = 0
        self._last_status: str | None = None

    @classmethod
    def on_stderr(cls, enabled: bool) -> Progress | None:
        if not enabled:
            return None
        stream = sys.stderr
        return cls(stream, terminal=bool(getattr(stream, "isatty", lambda: False)()))

    def show(self, line: str, status: str) -> None:
        if self.terminal:
            self.stream.write("\r" + line.ljust(self._width))
            self._width = len(line)
        elif status != self._last_status:
            self.stream.write(line + "\n")
        self._last_status = status
        self.stream.flush()

    def close(self) -> None:
        if self.terminal and self._width:
            self.stream.write("\n")
            self.stream.flush()
