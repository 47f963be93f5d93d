"""Fault-injection scenarios: kill workers, restart Redis, stop PostgreSQL — nothing lost."""
