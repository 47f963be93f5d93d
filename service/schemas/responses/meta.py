"""The names the API accepts (``GET /meta``)."""

from __future__ import annotations

from typing import Any, get_args

from pydantic import BaseModel, Field

from service import generators
from service.schemas import names


class GeneratorName(BaseModel):
    name: str
    task: str = Field(description="classification | regression")


class MetaOut(BaseModel):
    """The names the API accepts (``schemas.names``), for clients and the dashboard."""

    statuses: list[str]
    queues: list[str]
    metrics: list[str]
    tasks: list[str]
    generators: list[GeneratorName]
    hidden_activations: list[str]
    output_activations: list[str]
    losses: list[str]
    init_schemes: list[str]
    optimizers: list[str]
    schedules: list[str]
    schedulers: list[str]
    batch_kinds: list[str]
    distributions: list[str]


def meta_dict() -> dict[str, Any]:
    return {
        "statuses": [status.value for status in names.JobStatus],
        "queues": [queue.value for queue in names.Queue],
        "metrics": list(names.METRICS),
        "tasks": list(names.TASKS),
        "generators": [
            {"name": name, "task": generators.describe({"generator": name})[0]}
            for name in names.GENERATORS
        ],
        "hidden_activations": list(get_args(names.HiddenActivation)),
        "output_activations": list(get_args(names.OutputActivation)),
        "losses": list(get_args(names.LossName)),
        "init_schemes": list(get_args(names.InitSchemeName)),
        "optimizers": list(get_args(names.OptimizerName)),
        "schedules": list(names.SCHEDULES),
        "schedulers": list(get_args(names.SchedulerName)),
        "batch_kinds": list(names.BATCH_KINDS),
        "distributions": list(names.DISTRIBUTIONS),
    }
