"""``deltaflow jobs|batches|datasets …``: the HTTP API from a shell.

Tables for people, ``--json`` for scripts. The server and key come from ``--url`` and
``--key`` or ``DELTAFLOW_URL`` and ``DELTAFLOW_API_KEY``. Exit status: 0 done, 1 an API
error (its detail on stderr) or a waited-for job that did not succeed, 2 bad usage.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Callable, Sequence
from itertools import islice
from pathlib import Path
from typing import Any, TextIO

from deltaflow_client import tables
from deltaflow_client.client import ENV_KEY, ENV_URL, Client
from deltaflow_client.errors import DeltaflowError

PROG = "deltaflow"


class Output:
    """Where a verb writes: JSON for ``--json``, else the human rendering."""

    def __init__(self, args: argparse.Namespace, stdout: TextIO) -> None:
        self.as_json = bool(getattr(args, "json", False))
        self.stdout = stdout

    def emit(self, value: Any, human: Callable[[Any], str]) -> None:
        text = json.dumps(value, indent=2) if self.as_json else human(value)
        print(text, file=self.stdout)


def _spec(path: str) -> dict[str, Any]:
    """A JSON spec from a file, or from stdin for ``-``."""
    try:
        text = sys.stdin.read() if path == "-" else Path(path).read_text(encoding="utf-8")
        spec = json.loads(text)
    except (OSError, ValueError) as error:
        raise DeltaflowError(None, {"title": "Bad spec file"}, detail=f"{path}: {error}") from None
    if not isinstance(spec, dict):
        raise DeltaflowError(None, {"title": "Bad spec file"}, detail=f"{path}: not a JSON object")
    return spec


def _finished_ok(status: str) -> int:
    return 0 if status == "succeeded" else 1


def jobs_submit(client: Client, args: argparse.Namespace, out: Output) -> int:
    job = client.submit_job(_spec(args.spec))
    if args.wait:
        job = client.wait(job["id"], progress=not args.no_progress)
    out.emit(job, tables.job_details)
    return _finished_ok(job["status"]) if args.wait else 0


def jobs_list(client: Client, args: argparse.Namespace, out: Output) -> int:
    found = client.jobs(status=args.status, batch_id=args.batch_id)
    items = list(islice(found, args.limit) if args.limit else found)
    out.emit(items, tables.jobs_table)
    return 0


def jobs_get(client: Client, args: argparse.Namespace, out: Output) -> int:
    out.emit(client.get_job(args.id), tables.job_details)
    return 0


def jobs_curve(client: Client, args: argparse.Namespace, out: Output) -> int:
    # --csv: every field but the per-layer activation statistics (the API's default is the
    # losses and accuracies; grad_norms and the rest only when named in fields=).
    fields = ",".join(tables.CSV_FIELDS) if args.csv else None
    points = client.curve(args.id, max_points=args.max_points, fields=fields)
    if args.csv and not out.as_json:
        print(tables.curve_csv(points), file=out.stdout)
    else:
        out.emit(points, tables.curve_table)
    return 0


def jobs_cancel(client: Client, args: argparse.Namespace, out: Output) -> int:
    out.emit(client.cancel_job(args.id), lambda job: f"{job['id']}  {job['status']}")
    return 0


def batches_submit(client: Client, args: argparse.Namespace, out: Output) -> int:
    batch = client.submit_batch(_spec(args.spec))
    if not args.wait:
        out.emit(batch, lambda b: f"{b['id']}  {b['size']} jobs\n" + "\n".join(b["job_ids"]))
        return 0
    summary = client.wait_batch(batch["id"], progress=not args.no_progress)
    out.emit(summary, tables.batch_details)
    return 0 if summary["counts"].get("succeeded") == summary["size"] else 1


def batches_get(client: Client, args: argparse.Namespace, out: Output) -> int:
    query = {"metric": args.metric, "mode": args.mode}
    out.emit(client.batch(args.id, **{k: v for k, v in query.items() if v}), tables.batch_details)
    return 0


def datasets_upload(client: Client, args: argparse.Namespace, out: Output) -> int:
    dataset = client.upload_dataset(args.file, name=args.name, task=args.task)
    out.emit(dataset, tables.dataset_details)
    return 0


def build_parser() -> argparse.ArgumentParser:
    # Connection options are accepted before and after the verb; SUPPRESS keeps a
    # subcommand's absent option from overwriting one given before it.
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--url", default=argparse.SUPPRESS, help=f"server (default ${ENV_URL})")
    common.add_argument("--key", default=argparse.SUPPRESS, help=f"API key (default ${ENV_KEY})")
    common.add_argument("--json", action="store_true", default=argparse.SUPPRESS, help="JSON out")
    common.add_argument("--timeout", type=float, default=argparse.SUPPRESS, help="per request, s")

    summary = (__doc__ or "").split("\n")[0]
    parser = argparse.ArgumentParser(prog=PROG, parents=[common], description=summary)
    resources = parser.add_subparsers(dest="resource", required=True)

    def group(parent: Any, name: str, help: str) -> Any:
        return parent.add_parser(name, help=help).add_subparsers(dest="verb", required=True)

    def verb(group: Any, name: str, run: Callable[..., int], help: str) -> argparse.ArgumentParser:
        sub: argparse.ArgumentParser = group.add_parser(name, parents=[common], help=help)
        sub.set_defaults(run=run)
        return sub

    def submitter(group: Any, run: Callable[..., int], what: str) -> None:
        sub = verb(group, "submit", run, f"submit {what} (a JSON file, - for stdin)")
        sub.add_argument("spec")
        sub.add_argument("--wait", action="store_true", help="wait until it has finished")
        sub.add_argument("--no-progress", action="store_true", help="no bar while waiting")

    jobs = group(resources, "jobs", "training jobs")
    submitter(jobs, jobs_submit, "a job spec")
    listing = verb(jobs, "list", jobs_list, "list jobs, newest first")
    listing.add_argument("--status")
    listing.add_argument("--batch-id")
    listing.add_argument("--limit", type=int, default=50, help="at most N jobs (0: all)")
    verb(jobs, "get", jobs_get, "one job").add_argument("id")
    curve = verb(jobs, "curve", jobs_curve, "a job's loss curve")
    curve.add_argument("id")
    curve.add_argument("--csv", action="store_true", help="CSV with every field")
    curve.add_argument("--max-points", type=int, help="downsample to N points")
    verb(jobs, "cancel", jobs_cancel, "cancel a job").add_argument("id")

    batches = group(resources, "batches", "sweeps")
    submitter(batches, batches_submit, "a sweep")
    bget = verb(batches, "get", batches_get, "a batch's summary and jobs")
    bget.add_argument("id")
    bget.add_argument("--metric", help="rank jobs by this metric (default val_loss)")
    bget.add_argument("--mode", choices=["min", "max"])

    datasets = group(resources, "datasets", "datasets")
    upload = verb(datasets, "upload", datasets_upload, "upload a .csv or .npz file")
    upload.add_argument("file")
    upload.add_argument("--name", help="default: the file name")
    upload.add_argument("--task", choices=["classification", "regression"])
    return parser


def main(
    argv: Sequence[str] | None = None, stdout: TextIO | None = None, stderr: TextIO | None = None
) -> int:
    stdout, stderr = stdout or sys.stdout, stderr or sys.stderr
    args = build_parser().parse_args(argv)
    url = getattr(args, "url", None) or os.environ.get(ENV_URL)
    key = getattr(args, "key", None) or os.environ.get(ENV_KEY)
    if not url or not key:
        print(f"{PROG}: give --url and --key, or set {ENV_URL} and {ENV_KEY}", file=stderr)
        return 2
    try:
        client = Client(url, key, timeout=getattr(args, "timeout", 30.0))
    except ValueError as error:  # a malformed URL
        print(f"{PROG}: {error}", file=stderr)
        return 2
    try:
        with client:
            return int(args.run(client, args, Output(args, stdout)))
    except DeltaflowError as error:
        print(f"{PROG}: error: {error}", file=stderr)
        return 1
    except BrokenPipeError:  # `… | head` closed the pipe: stop quietly
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())  # so the interpreter's final flush is quiet
        return 1


if __name__ == "__main__":
    sys.exit(main())
