"""Settings read from the environment (``DELTAFLOW_*``), with test overrides.

Every limit the API enforces lives here, so operators can change it without code.
"""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ENV_PREFIX = "DELTAFLOW_"


@dataclass(frozen=True)
class Limits:
    """Sizes the API accepts; every one is configurable as ``DELTAFLOW_MAX_<NAME>``."""

    body_bytes: int = 200 * 1024 * 1024  # a 20000 x 784 float32 NPZ is ~63 MB
    dataset_samples: int = 200_000
    dataset_features: int = 4096
    dataset_values: int = 40_000_000  # samples x features
    inline_samples: int = 10_000
    classes: int = 1000
    epochs: int = 100_000
    parameters: int = 5_000_000
    layers: int = 32
    units: int = 8192
    batch_jobs: int = 1000
    trace_parameters: int = 2_000
    trace_examples: int = 64
    gradcheck_parameters: int = 5_000
    gradcheck_examples: int = 256
    page_size: int = 200
    curve_points: int = 10_000
    # Points of one GET /batches/{id}/curves answer with max_points (the cap per job is
    # lowered so that jobs x cap stays under it; service.curves.batch_curves).
    batch_curve_points: int = 100_000
    # Insight. The learning-rate finder trains synchronously in the API process
    # (service.lr_finder): its steps, the values it loads (examples x features, 8 bytes
    # each) and its work, steps x examples per step x parameters (1e9 is about 0.2 s of
    # one core), are bounded.
    lr_finder_steps: int = 300
    lr_finder_values: int = 4_000_000
    lr_finder_work: int = 5_000_000_000
    # The curve points GET /jobs/{id}/diagnostics reads at most (service.diagnostics).
    diagnostics_points: int = 1_000
    # GET /datasets/{id}/points (service.dataset_points): rows of one answer (the default
    # and the cap of max_points) and its values, rows x columns (a wide dataset answers
    # fewer rows).
    dataset_points: int = 5_000
    dataset_point_values: int = 200_000
    # Hostile input (docs/security.md): every reader budgets before it allocates.
    label_chars: int = 200  # characters of one class label (JSON, CSV, NPZ)
    csv_field_chars: int = 1_000  # characters of one CSV field
    npz_bytes: int = 400 * 1024 * 1024  # X and y inflated, from their .npy headers
    npz_compression_ratio: int = 1_000  # inflated / compressed size of an NPZ member
    # A JSON body: its size (datasets beyond it go as CSV or NPZ files) and nesting depth.
    json_body_bytes: int = 32 * 1024 * 1024
    json_depth: int = 64
    # Inline values (X and y) all the jobs of one batch store in their specs.
    batch_inline_values: int = 2_000_000
    # Compute budgets of the synchronous endpoints (service.budgets), in multiply-adds:
    # a trace is 2 x examples x (parameters + layers); a gradient check that times
    # 2 x parameters. 4e9 is about a second of one core here.
    trace_work: int = 50_000_000
    gradcheck_work: int = 4_000_000_000
    predict_rows: int = 10_000
    predict_outputs: int = 1_000_000  # rows x output units of one prediction
    predict_work: int = 20_000_000_000  # rows x parameters
    predict_chunk_values: int = 4_000_000  # rows of a forward pass x widest layer
    # A job's estimated peak memory on its worker (data, a batch's activations,
    # parameters and optimizer state), refused at submission above this.
    job_memory_bytes: int = 2 * 1024 * 1024 * 1024


def limit_env(name: str) -> str:
    """The environment variable of a ``Limits`` field: ``DELTAFLOW_MAX_<NAME>``."""
    return f"{ENV_PREFIX}MAX_{name.upper()}"


@dataclass(frozen=True)
class Settings:
    data_dir: Path = Path("var")
    database_url: str = ""
    broker_url: str = ""
    limits: Limits = field(default_factory=Limits)
    # Lease of a running job: a run that cannot extend it within this time loses the job.
    lease_seconds: float = 60.0
    # How often a run flushes curve points (and extends its lease).
    flush_seconds: float = 1.0
    # Checkpoint every N epochs or T seconds, whichever comes first.
    checkpoint_epochs: int = 50
    checkpoint_seconds: float = 10.0
    max_attempts: int = 3
    # A job still queued this long after its last dispatch is sent again by the reaper.
    requeue_after_seconds: float = 30.0
    reaper_interval_seconds: float = 5.0
    soft_time_limit_seconds: float = 3600.0
    hard_time_limit_seconds: float = 3700.0
    broker_polling_interval: float = 0.1
    # Every API request's deadline (service.deadlines): past it a request stops at its next
    # check and answers 503, nothing stored; also each PostgreSQL statement's timeout. Above
    # the largest upload (a 4e7-value CSV parses in ~32 s on a loaded 2-core VM) and below
    # nginx's proxy_read_timeout (deploy/nginx.conf). 0 = none.
    request_timeout_seconds: float = 120.0
    # API processes cache what an API key maps to this long: a revoked key stops working
    # within this time (service.keycache). 0 = look every key up on every request.
    auth_cache_seconds: float = 5.0
    # GET /metrics answers only with "Authorization: Bearer <this>" when set (service.metrics).
    metrics_token: str = ""
    # "text" or "json": every log line of the API and the worker (service.logs).
    log_format: str = "text"
    # Webhooks (service.webhooks): deliveries to private, loopback or link-local addresses
    # are refused unless allowed; each attempt's timeout; the waits before each retry
    # (Standard Webhooks' reference schedule: 5 s, 5 min, 30 min, 2 h, 5 h, 10 h, 10 h);
    # how long the previous secret still signs after a rotation.
    webhook_allow_private: bool = False
    webhook_timeout_seconds: float = 5.0
    webhook_retry_seconds: str = "5,300,1800,7200,18000,36000,36000"
    webhook_rotation_grace_seconds: float = 86400.0
    # Fair dispatch (service.dispatch, docs/fairness.md): messages waiting in the broker per
    # live worker process beyond its slots, so a freed slot starts its next job at once.
    dispatch_margin: int = 1
    # Tiny jobs (estimated work at most ``group_work`` multiply-adds: service.budgets) go up
    # to ``group_jobs`` to a message, claimed and finished together by one worker slot: a
    # tiny job's bookkeeping (a message, two commits) is most of its cost. 1 = one each.
    group_jobs: int = 16
    group_work: int = 2_000_000
    # Per-tenant quotas (service.quotas); ``deltaflow set-quota`` overrides. None = unlimited.
    quota_max_queued_jobs: int | None = None
    quota_max_running_jobs: int | None = None
    quota_max_storage_bytes: int | None = None
    # Per API key (service.api.ratelimit), e.g. "20/second;600/minute"; empty = off. The
    # counters live in this Redis (default: the broker's when it is Redis, else in memory,
    # per API process).
    rate_limit: str = ""
    rate_limit_storage_url: str = ""

    @property
    def broker_dir(self) -> Path:
        return self.data_dir / "broker"

    @classmethod
    def from_env(cls, env: dict[str, str] | None = None, **overrides: Any) -> Settings:
        """Build settings from ``DELTAFLOW_*`` variables; keyword overrides win."""
        env = dict(os.environ if env is None else env)
        values: dict[str, Any] = {}
        for f in dataclasses.fields(cls):
            if f.name == "limits":
                continue
            raw = env.get(ENV_PREFIX + f.name.upper())
            if raw is not None:
                values[f.name] = _coerce(f.type, raw)
        limit_values: dict[str, Any] = {}
        for f in dataclasses.fields(Limits):
            raw = env.get(ENV_PREFIX + "MAX_" + f.name.upper())
            if raw is not None:
                limit_values[f.name] = int(raw)
        limit_overrides = overrides.pop("limits", None)
        limits = Limits(**limit_values)
        if isinstance(limit_overrides, dict):
            limits = dataclasses.replace(limits, **limit_overrides)
        elif isinstance(limit_overrides, Limits):
            limits = limit_overrides
        values.update(overrides)
        settings = cls(limits=limits, **values)
        data_dir = Path(settings.data_dir)
        settings = dataclasses.replace(settings, data_dir=data_dir)
        if not settings.database_url:
            url = f"sqlite:///{(data_dir / 'deltaflow.sqlite3').resolve()}"
            settings = dataclasses.replace(settings, database_url=url)
        if not settings.broker_url:
            settings = dataclasses.replace(settings, broker_url="filesystem://")
        return settings

    @property
    def uses_filesystem_broker(self) -> bool:
        return self.broker_url.startswith("filesystem://")


def _coerce(type_name: Any, raw: str) -> Any:
    name = type_name if isinstance(type_name, str) else getattr(type_name, "__name__", "")
    if name == "int":
        return int(raw)
    if name == "int | None":
        return int(raw) if raw.strip() else None
    if name == "float":
        return float(raw)
    if name == "bool":
        return raw.strip().lower() in {"1", "true", "yes", "on"}
    if name == "Path":
        return Path(raw)
    return raw
