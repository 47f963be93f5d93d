"""Batch schedulers: at each report of a trial, continue, stop it, or have it exploit another.

A scheduler is a pure class behind one interface (``base.Scheduler``): at the epochs it
names (``due``) a trial *reports*, and the scheduler reads the sweep's curves and trials and
returns a ``Decision``. ``reports`` runs it inside the run's flush transaction and carries
the decision out; every decision is a ``trial_decisions`` row and stands once taken. A new
scheduler: a spec in ``schemas.batch``, its name in ``schemas.names.SchedulerName``, a module
here, and its entry in ``registry.SCHEDULERS``. The TPE *search* (which trials exist) is
``service.searches``.
"""

from __future__ import annotations

from service.schedulers.base import Decision, Scheduler
from service.schedulers.registry import SCHEDULERS
from service.schedulers.reports import Reporting, reporting

__all__ = ["SCHEDULERS", "Decision", "Reporting", "Scheduler", "reporting"]
