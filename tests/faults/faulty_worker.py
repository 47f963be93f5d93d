"""The production Celery worker plus one test-only fault: a poison pill.

Run as ``python tests/faults/faulty_worker.py <celery worker arguments>``. When
``DELTAFLOW_FAULT_INJECTION=1`` is set, a job whose name contains ``POISON_MARKER`` kills
the pool child running it (``os._exit``) after its first epoch — after the claim, like a
crash in native code that strikes the same data every time. Every other job runs the
unchanged production code. Nothing of this is installed in the ``deltaflow`` package.
"""

from __future__ import annotations

import os
import sys

from sqlalchemy import select

POISON_MARKER = "poison-pill"
POISON_EXIT_CODE = 86


def install_poison_pill() -> None:
    from service import logs
    from service.config import Settings
    from service.db import make_engine, make_sessionmaker
    from service.models import Job
    from worker.nn import training

    settings = Settings.from_env()
    factory = None

    def is_poison(job_id: str | None) -> bool:
        nonlocal factory
        if job_id is None:
            return False
        if factory is None:  # created in the pool child, never shared across fork
            factory = make_sessionmaker(make_engine(settings.database_url))
        with factory() as session:
            name = session.scalar(select(Job.name).where(Job.id == job_id))
        return name is not None and POISON_MARKER in name

    run_epochs = training.Trainer.epochs

    def epochs_with_poison(self):
        poison = None
        for stats in run_epochs(self):
            yield stats
            if poison is None:  # the job being trained (one of a group's, too: worker.groups)
                poison = is_poison(logs.current("job_id"))
            if poison:
                os._exit(POISON_EXIT_CODE)

    training.Trainer.epochs = epochs_with_poison


def main(argv: list[str]) -> None:
    if os.environ.get("DELTAFLOW_FAULT_INJECTION") == "1":
        install_poison_pill()
    from worker.celery_app import app

    app.worker_main(["worker", *argv])


if __name__ == "__main__":
    main(sys.argv[1:])
