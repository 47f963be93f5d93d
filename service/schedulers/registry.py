"""Every scheduler by name (``schemas.names.SchedulerName``; ``tests/service/test_names.py``)."""

from __future__ import annotations

from service.schedulers.asha import Asha
from service.schedulers.base import Scheduler
from service.schedulers.hyperband import Hyperband
from service.schedulers.median import Median
from service.schedulers.pbt import Pbt

SCHEDULERS: dict[str, Scheduler] = {
    scheduler.name: scheduler for scheduler in (Asha(), Hyperband(), Median(), Pbt())
}
