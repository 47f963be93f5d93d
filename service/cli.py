"""The ``deltaflow`` command: ``up``, ``api``, ``worker``, ``migrate``, the key commands
``create-key``, ``list-keys``, ``revoke-key`` (``service.tenants``), ``set-quota``
(``service.quotas``), and the HTTP verbs ``jobs``, ``batches``, ``datasets`` (handed to
``deltaflow_client.cli``).

``up`` is the embedded default on one machine (``service.embedded``): it applies the
migrations, then runs the API (gunicorn) and one worker as child processes — exactly
``migrate`` + ``api`` + ``worker`` — configured by the same ``DELTAFLOW_*`` variables,
which default to SQLite and the filesystem broker under ``$DELTAFLOW_DATA_DIR`` (``./var``).

The CLI never imports the worker: ``worker`` replaces itself with ``celery -A
worker.celery_app worker`` after sizing the BLAS thread pools, so nothing numeric is
loaded before the thread counts are fixed.
"""

from __future__ import annotations

import argparse
import functools
import os
import sys
from collections.abc import Callable
from datetime import datetime
from pathlib import Path

from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError

from service import quotas, tenants
from service.config import Settings
from service.db import make_engine, make_sessionmaker
from service.embedded import Embedded
from service.migrate import upgrade
from service.problems import Problem
from service.timeutil import iso

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8000
BLAS_VARIABLES = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")
MAX_EXPIRY_DAYS = 36_500
CLIENT_VERBS = {"jobs": "training jobs", "batches": "sweeps", "datasets": "datasets"}
Handler = Callable[[argparse.Namespace], int]

# --- commands -------------------------------------------------------------------------


def cmd_migrate(_args: argparse.Namespace) -> int:
    settings = Settings.from_env()
    upgrade(settings.database_url)
    sys.stderr.write(f"database is at the latest schema ({_redact(settings.database_url)})\n")
    return 0


def _needs_database(
    command: str,
) -> Callable[[Callable[[argparse.Namespace, Settings], int]], Handler]:
    """A command that works on Deltaflow's database: refuse, with one line and exit 1, a
    database that was never created (``missing_database``, checked before connecting) or
    one that answers but is not ready (``unusable_database``)."""

    def wrap(run: Callable[[argparse.Namespace, Settings], int]) -> Handler:
        @functools.wraps(run)
        def handler(args: argparse.Namespace) -> int:
            settings = Settings.from_env()
            missing = missing_database(settings)
            if missing:
                return _fail(command, missing)
            try:
                return run(args, settings)
            except DBAPIError as error:
                return _fail(command, unusable_database(settings, error))

        return handler

    return wrap


@_needs_database("create-key")
def cmd_create_key(args: argparse.Namespace, settings: Settings) -> int:
    """Print one new key for the tenant (created if needed), alone on stdout."""
    key = tenants.issue_key(settings, args.tenant, args.name, args.expires_in)
    sys.stdout.write(key + "\n")
    return 0


@_needs_database("list-keys")
def cmd_list_keys(args: argparse.Namespace, settings: Settings) -> int:
    """Every key's prefix, tenant, name and times, as a table (the keys are not stored)."""
    rows = tenants.keys(settings, args.tenant)
    columns = ("prefix", "tenant", "name", "created", "expires", "last_used", "revoked")
    table = [[c.replace("_", " ") for c in columns]]
    table += [[_cell(row[c]) for c in columns] for row in rows]
    widths = [max(len(line[i]) for line in table) for i in range(len(columns))]
    for line in table:
        sys.stdout.write("  ".join(v.ljust(w) for v, w in zip(line, widths, strict=True)).rstrip())
        sys.stdout.write("\n")
    return 0


@_needs_database("revoke-key")
def cmd_revoke_key(args: argparse.Namespace, settings: Settings) -> int:
    try:
        tenants.revoke_key(settings, args.prefix)
    except Problem as exc:
        return _fail("revoke-key", exc.detail)
    sys.stderr.write(
        f"revoked; every API process refuses it within {settings.auth_cache_seconds:g} s\n"
    )
    return 0


def cmd_set_quota(args: argparse.Namespace) -> int:
    """Store the tenant's own quotas; print the ones it has now (a default shows as such)."""
    values = {name: getattr(args, name) for name in quotas.NAMES}
    given = {name: value for name, value in values.items() if value is not _UNSET}
    settings = Settings.from_env()
    defaults = quotas.QuotaLimits.defaults(settings)
    try:
        with make_sessionmaker(make_engine(settings.database_url))() as session:
            own = quotas.set_quota(session, args.tenant, given)
    except Problem as exc:
        sys.stderr.write(f"deltaflow set-quota: {exc.detail}\n")
        return 1
    for name in quotas.NAMES:
        value = own[name]
        if value is None:
            shown = f"default ({_limit(getattr(defaults, name))})"
        else:
            shown = _limit(None if value == quotas.UNLIMITED else value)
        sys.stdout.write(f"{name} {shown}\n")
    return 0


_UNSET = object()


def _quota_value(raw: str) -> int | None:
    """``N`` (>= 0), ``unlimited`` (-1 stored) or ``default`` (back to DELTAFLOW_QUOTA_*)."""
    if raw == "unlimited":
        return quotas.UNLIMITED
    if raw == "default":
        return None
    value = int(raw)
    if value < 0:
        raise argparse.ArgumentTypeError("a quota is >= 0, 'unlimited' or 'default'")
    return value


def _limit(value: int | None) -> str:
    return "unlimited" if value is None else str(value)


def cmd_api(args: argparse.Namespace) -> int:
    # Every gunicorn process writes its HTTP metrics into one folder (service.metrics).
    from service.metrics import prepare_multiprocess_dir

    prepare_multiprocess_dir(Settings.from_env().data_dir)
    # Replace this process, so signals reach gunicorn directly.
    command = _api_command(args.host, args.port, args.workers, args.threads)
    os.execvp(sys.executable, command)  # noqa: S606
    return 1  # not reached


def cmd_worker(args: argparse.Namespace) -> int:
    os.environ.update(blas_threads(args.concurrency))
    command = _worker_command(
        args.concurrency, args.pool, args.queues, args.loglevel, args.hostname
    )
    os.execvp(sys.executable, command)  # noqa: S606
    return 1  # not reached


def cmd_up(args: argparse.Namespace) -> int:
    settings = Settings.from_env()
    data_dir = Path(settings.data_dir).resolve()
    data_dir.mkdir(parents=True, exist_ok=True)
    upgrade(settings.database_url)
    first_key = tenants.first_key(settings)
    stack = Embedded(data_dir, args.host, args.port)
    return stack.run(settings, first_key, demo=args.demo)


# --- helpers shared by the commands ----------------------------------------------------

MIGRATE_HINT = (
    "run `make run` (or `deltaflow migrate`) in the Deltaflow folder first, run this "
    "command there, or set DELTAFLOW_DATA_DIR (or DELTAFLOW_DATABASE_URL) to the data folder"
)


def missing_database(settings: Settings) -> str | None:
    """Why the key commands cannot work here, or None: an embedded SQLite database that was
    never created. Checked before connecting, since connecting would create an empty file."""
    url = make_url(settings.database_url)
    if url.get_backend_name() != "sqlite" or url.database in (None, "", ":memory:"):
        return None
    path = Path(url.database)
    if path.is_file():
        return None
    message = f"no Deltaflow database in the data folder {path.parent} (no {path.name}); "
    found = _project_database()
    if found is not None and found.resolve() != path.resolve():
        message += f"there is one in {found.parent}: set DELTAFLOW_DATA_DIR={found.parent}, or "
    return message + MIGRATE_HINT


def unusable_database(settings: Settings, error: DBAPIError) -> str:
    """One line for a database that answers but is not Deltaflow's (no tables) or not there."""
    where = _redact(settings.database_url)
    first = str(error.orig).strip().splitlines()[0] if error.orig else type(error).__name__
    return f"the database {where} is not ready ({first}); {MIGRATE_HINT}"


def _project_database() -> Path | None:
    """The embedded database of the checkout this package runs from (an editable install)."""
    candidate = Path(__file__).resolve().parent.parent / "var" / "deltaflow.sqlite3"
    return candidate if candidate.is_file() else None


def _fail(command: str, message: str) -> int:
    sys.stderr.write(f"deltaflow {command}: {message}\n")
    return 1


def blas_threads(concurrency: int, cores: int | None = None) -> dict[str, str]:
    """Thread counts so that concurrency x BLAS threads never exceeds the cores."""
    cores = cores or os.cpu_count() or 1
    threads = str(max(1, cores // max(1, concurrency)))
    return dict.fromkeys(BLAS_VARIABLES, threads)


def _api_command(host: str, port: int, workers: int, threads: int) -> list[str]:
    """gunicorn processes whose connections waitress reads whole (``service.serving``)."""
    return [
        sys.executable, "-m", "gunicorn",
        "--bind", f"{host}:{port}",
        "--workers", str(workers),
        "--worker-class", "service.serving.BufferingWorker",
        "--threads", str(threads),
        "--graceful-timeout", "10",
        "--access-logfile", "-",
        "--logger-class", "service.serving.Logger",  # DELTAFLOW_LOG_FORMAT (service.logs)
        "service.app:create_app()",
    ]  # fmt: skip


def _worker_command(
    concurrency: int, pool: str, queues: str, loglevel: str, hostname: str | None
) -> list[str]:
    command = [
        sys.executable, "-m", "celery", "-A", "worker.celery_app", "worker",
        "--concurrency", str(concurrency),
        "--pool", pool,
        "--queues", queues,
        "--loglevel", loglevel,
        "--without-gossip", "--without-mingle",
    ]  # fmt: skip
    if hostname:
        command += ["--hostname", hostname]
    return command


def _cell(value: object) -> str:
    if value is None:
        return "-"
    return iso(value) if isinstance(value, datetime) else str(value)


def _positive_days(text: str) -> float:
    try:
        days = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number of days: {text!r}") from None
    if not 0 < days <= MAX_EXPIRY_DAYS:
        raise argparse.ArgumentTypeError(f"days must be > 0 and <= {MAX_EXPIRY_DAYS}")
    return days


def _redact(url: str) -> str:
    """Hide a password in a database URL before printing it."""
    if "@" not in url or "://" not in url:
        return url
    scheme, rest = url.split("://", 1)
    credentials, host = rest.rsplit("@", 1)
    user = credentials.split(":", 1)[0]
    return f"{scheme}://{user}:***@{host}" if ":" in credentials else url


# --- argument parsing ---------------------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="deltaflow",
        description="Neural-network training jobs over HTTP. Configured by DELTAFLOW_* variables.",
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    up = commands.add_parser("up", help="migrate, then run the API and one worker (embedded)")
    up.add_argument("--host", default=DEFAULT_HOST)
    up.add_argument("--port", type=int, default=DEFAULT_PORT)
    up.add_argument("--demo", action="store_true", help="submit a demo job and show progress")
    up.set_defaults(handler=cmd_up)

    api = commands.add_parser("api", help="serve the HTTP API with gunicorn")
    api.add_argument("--host", default=DEFAULT_HOST)
    api.add_argument("--port", type=int, default=DEFAULT_PORT)
    api.add_argument("--workers", type=int, default=2, help="gunicorn worker processes")
    api.add_argument("--threads", type=int, default=8, help="application threads per process")
    api.set_defaults(handler=cmd_api)

    worker = commands.add_parser("worker", help="run a Celery worker (training jobs)")
    worker.add_argument("--concurrency", type=int, default=os.cpu_count() or 1)
    worker.add_argument("--pool", default="prefork")
    worker.add_argument("--queues", default="interactive,webhooks,batch", help="in priority order")
    worker.add_argument("--loglevel", default="INFO")
    worker.add_argument("--hostname", default=None, help="Celery node name, e.g. w1@%%h")
    worker.set_defaults(handler=cmd_worker)

    migrate = commands.add_parser("migrate", help="apply the database migrations")
    migrate.set_defaults(handler=cmd_migrate)

    create_key = commands.add_parser("create-key", help="print a new API key for a tenant")
    create_key.add_argument("--tenant", required=True)
    create_key.add_argument("--name", default=None, help="what the key is for (list-keys)")
    create_key.add_argument(
        "--expires-in", type=_positive_days, default=None, metavar="DAYS",
        help="the key answers 401 after this many days (default: never)",
    )  # fmt: skip
    create_key.set_defaults(handler=cmd_create_key)

    list_keys = commands.add_parser("list-keys", help="list API keys (never the keys)")
    list_keys.add_argument("--tenant", default=None)
    list_keys.set_defaults(handler=cmd_list_keys)

    revoke_key = commands.add_parser("revoke-key", help="revoke an API key by its prefix")
    revoke_key.add_argument("prefix", metavar="PREFIX", help="as list-keys shows it")
    revoke_key.set_defaults(handler=cmd_revoke_key)

    set_quota = commands.add_parser(
        "set-quota", help="set a tenant's quotas (N, 'unlimited', or 'default')"
    )
    set_quota.add_argument("--tenant", required=True)
    for name in quotas.NAMES:
        set_quota.add_argument(
            "--" + name.replace("_", "-"), dest=name, type=_quota_value, default=_UNSET,
            metavar="N", help=f"DELTAFLOW_QUOTA_{name.upper()} for this tenant",
        )  # fmt: skip
    set_quota.set_defaults(handler=cmd_set_quota)

    for verb, what in CLIENT_VERBS.items():  # handled by main() before parsing
        commands.add_parser(verb, help=f"{what} over HTTP (docs/client.md)", add_help=False)
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv and argv[0] in CLIENT_VERBS:
        # The HTTP verbs are the client's (it needs only requests, never this package).
        from deltaflow_client.cli import main as client_main

        return client_main(argv)
    args = build_parser().parse_args(argv)
    return int(args.handler(args) or 0)


if __name__ == "__main__":
    sys.exit(main())
