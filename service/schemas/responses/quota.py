"""A tenant's quota: its limits in force and its usage (``service.quotas``)."""

from __future__ import annotations

from pydantic import BaseModel, Field


class QuotaLimitsOut(BaseModel):
    """The tenant's limits in force (its own from ``deltaflow set-quota``, else the
    ``DELTAFLOW_QUOTA_*`` defaults); null = unlimited."""

    max_queued_jobs: int | None
    max_running_jobs: int | None
    max_storage_bytes: int | None


class QuotaUsageOut(BaseModel):
    queued_jobs: int
    running_jobs: int = Field(description="Running or cancelling.")
    storage_bytes: int = Field(description="Bytes of the tenant's stored datasets.")


class QuotaOut(BaseModel):
    limits: QuotaLimitsOut
    usage: QuotaUsageOut
