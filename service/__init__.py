"""Deltaflow service: the shared kernel (config, db, models, schemas, jobs) and the web layer.

The kernel modules import neither Flask nor Celery, so the worker can use them.
The Flask app factory lives in :mod:`service.app`.
"""
