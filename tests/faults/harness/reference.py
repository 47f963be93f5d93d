"""Uninterrupted runs to compare against: the engine in process, no database, no faults.

The run is built by the worker's own ``service.build.prepare`` (network, one-hot targets, split,
standardization) from the job's stored, validated spec, then trained start to end.
"""

from __future__ import annotations

import json

from sqlalchemy.orm import Session, sessionmaker

from service.build import prepare
from service.config import Settings
from service.models import Job
from service.trained import weights_npz
from worker.datasets import load_dataset

from .integrity import Reference, load_weights

_cache: dict[str, Reference] = {}


def reference_run(spec: dict, tenant_id: str, factory: sessionmaker[Session], settings: Settings):
    """The curve and final weights of ``spec`` trained without interruption (cached)."""
    key = json.dumps(spec, sort_keys=True)
    if key not in _cache:
        data = load_dataset(spec["dataset"], tenant_id, factory, settings)
        prepared = prepare(spec, data)
        losses = {stats.epoch: stats.train_loss for stats in prepared.trainer.epochs()}
        _cache[key] = Reference(losses, load_weights(weights_npz(prepared.net)))
    return _cache[key]


def references_for(
    factory: sessionmaker[Session], settings: Settings, job_ids: list[str]
) -> dict[str, Reference]:
    """Job name → its uninterrupted run, for every given job (names must be unique)."""
    with factory() as session:
        jobs = [session.get(Job, job_id) for job_id in job_ids]
        specs = [(job.name, job.spec, job.tenant_id) for job in jobs if job is not None]
    names = [name for name, _, _ in specs]
    assert len(names) == len(set(names)), "scenario jobs need unique names"
    return {name: reference_run(spec, tenant, factory, settings) for name, spec, tenant in specs}
