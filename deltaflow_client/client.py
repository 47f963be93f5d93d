"""``Client``: Deltaflow's HTTP API as Python calls that return plain dicts and lists.

Every method is one resource of the contract (shared API.md); lists are iterators that
follow ``next_cursor`` across pages, curves follow ``next_since``, and ``wait`` polls with
``If-None-Match`` so an unchanged job costs a 304.
"""

from __future__ import annotations

import os
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from deltaflow_client import frames
from deltaflow_client.errors import DeltaflowError
from deltaflow_client.progress import Progress, batch_line, job_line
from deltaflow_client.transport import Transport, json_object, segment

if TYPE_CHECKING:
    import pandas as pd

FINISHED = frozenset({"succeeded", "failed", "cancelled"})
MAX_POLL_SECONDS = 4.0
ENV_URL = "DELTAFLOW_URL"
ENV_KEY = "DELTAFLOW_API_KEY"


def as_list(values: Any) -> Any:
    """numpy arrays (anything with ``tolist``) and tuples as JSON-ready lists."""
    if hasattr(values, "tolist"):
        return values.tolist()
    if isinstance(values, tuple | list):
        return [as_list(v) for v in values]
    return values


class Client:
    """A connection to one Deltaflow server as one tenant.

    ``url`` is the server root (``http://127.0.0.1:8000``) or the API base (``…/api/v1``);
    ``key`` an API key. ``timeout`` bounds each HTTP request in seconds; ``retries`` is how
    often a 429/503 answer, or a connection error on a request safe to repeat, is retried.
    Errors raise ``DeltaflowError``.
    """

    def __init__(
        self,
        url: str,
        key: str,
        *,
        timeout: float = 30.0,
        retries: int = 4,
        max_retry_wait: float = 60.0,
    ) -> None:
        self.transport = Transport(
            url, key, timeout=timeout, retries=retries, max_retry_wait=max_retry_wait
        )

    @classmethod
    def from_env(cls, **options: Any) -> Client:
        """A client for ``$DELTAFLOW_URL`` with ``$DELTAFLOW_API_KEY``."""
        url, key = os.environ.get(ENV_URL), os.environ.get(ENV_KEY)
        if not url or not key:
            raise DeltaflowError(None, detail=f"set {ENV_URL} and {ENV_KEY}")
        return cls(url, key, **options)

    @property
    def base_url(self) -> str:
        return self.transport.base

    def __repr__(self) -> str:
        return f"Client({self.base_url!r})"

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    def close(self) -> None:
        self.transport.close()

    # --- plumbing -----------------------------------------------------------------------

    def _json(self, method: str, path: str, **kwargs: Any) -> dict[str, Any]:
        return self.transport.request_json(method, path, **kwargs)

    def _pages(self, path: str, params: dict[str, Any]) -> Iterator[dict[str, Any]]:
        cursor = params.pop("cursor", None)
        while True:
            page = self._json("GET", path, params={**params, "cursor": cursor})
            yield from page["items"]
            cursor = page.get("next_cursor")
            if not cursor:
                return

    def _poll(
        self,
        path: str,
        params: dict[str, Any],
        done: Callable[[dict[str, Any]], bool],
        describe: Callable[[dict[str, Any]], tuple[str, str]],
        *,
        progress: bool,
        poll: float,
        timeout: float | None,
    ) -> dict[str, Any]:
        """GET ``path`` until ``done(body)``, drawing ``describe(body)`` (a progress line and
        the state it shows) on every change; a 304 (nothing changed) lengthens the pause."""
        bar = Progress.on_stderr(progress)
        deadline = None if timeout is None else time.monotonic() + timeout
        etag: str | None = None
        body: dict[str, Any] = {}
        pause = poll
        try:
            while True:
                headers = {"If-None-Match": etag} if etag else None
                response = self.transport.request("GET", path, params=params, headers=headers)
                if response.status_code == 304:
                    pause = min(pause * 1.5, max(poll, MAX_POLL_SECONDS))
                else:
                    body, etag, pause = json_object(response), response.headers.get("ETag"), poll
                    if bar:
                        bar.show(*describe(body))
                if done(body):
                    return body
                if deadline is not None and time.monotonic() > deadline:
                    raise DeltaflowError(
                        None, {"title": "Timeout"}, detail=f"{path}: not done after {timeout} s"
                    )
                self.transport.sleep(pause)
        finally:
            if bar:
                bar.close()

    # --- jobs ---------------------------------------------------------------------------

    def submit_job(
        self, spec: dict[str, Any], idempotency_key: str | None = None
    ) -> dict[str, Any]:
        """Submit ``{name?, network, dataset, training}``; returns the queued job.

        Every submit carries an ``Idempotency-Key`` (a new uuid unless given), reused by
        the retries of this call, so a retried submit never makes a second job.
        """
        key = idempotency_key or str(uuid.uuid4())
        return self._json("POST", "/jobs", json=spec, headers={"Idempotency-Key": key})

    def get_job(self, job_id: str) -> dict[str, Any]:
        return self._json("GET", f"/jobs/{segment(job_id)}")

    def jobs(self, **filters: Any) -> Iterator[dict[str, Any]]:
        """Every job matching ``filters`` (``status``, ``batch_id``, …), newest first,
        across all pages (``limit`` sets the page size, not the total)."""
        return self._pages("/jobs", dict(filters))

    def cancel_job(self, job_id: str) -> dict[str, Any]:
        return self._json("POST", f"/jobs/{segment(job_id)}/cancel")

    def delete_job(self, job_id: str) -> None:
        self.transport.request("DELETE", f"/jobs/{segment(job_id)}")

    def wait(
        self,
        job_id: str,
        progress: bool = True,
        poll: float = 0.5,
        timeout: float | None = None,
    ) -> dict[str, Any]:
        """Poll until the job has finished (succeeded, failed or cancelled) and return it.

        ``progress`` draws a bar on stderr when it is a terminal (plain status lines
        otherwise); ``poll`` is the first pause in seconds, lengthened up to 4 s while the
        job does not change; ``timeout`` raises ``DeltaflowError`` (status None) after so
        many seconds.
        """
        return self._poll(
            f"/jobs/{segment(job_id)}",
            {},
            lambda job: job.get("status") in FINISHED,
            lambda job: (job_line(job), str(job.get("status"))),
            progress=progress,
            poll=poll,
            timeout=timeout,
        )

    def curve(self, job_id: str, **query: Any) -> list[dict[str, Any]]:
        """The job's curve points, all pages (``since``, ``max_points`` and the other query
        parameters of ``GET /jobs/{id}/curve`` pass through)."""
        path = f"/jobs/{segment(job_id)}/curve"
        since = int(query.pop("since", 0))
        points: list[dict[str, Any]] = []
        while True:
            page = self._json("GET", path, params={**query, "since": since})
            points.extend(page["points"])
            if page.get("complete") or not page["points"] or page["next_since"] <= since:
                return points
            since = page["next_since"]

    def curve_frame(self, job_id: str, **query: Any) -> pd.DataFrame:
        """``curve`` as a pandas DataFrame indexed by epoch (needs pandas)."""
        frames.pandas()  # fail before downloading anything
        return frames.curve_frame(self.curve(job_id, **query))

    def model(self, job_id: str) -> dict[str, Any]:
        """Trained weights (``wb`` and ``theta`` layouts), classes and standardization."""
        return self._json("GET", f"/jobs/{segment(job_id)}/model")

    def predict(self, job_id: str, X: Any) -> dict[str, Any]:
        """``{predictions, probabilities?}`` for rows ``X`` (lists or a numpy array)."""
        return self._json(
            "POST", f"/jobs/{segment(job_id)}/predict", json={"X": as_list(X)}, idempotent=True
        )

    # --- batches ------------------------------------------------------------------------

    def submit_batch(
        self, spec: dict[str, Any], idempotency_key: str | None = None
    ) -> dict[str, Any]:
        """Submit a sweep (``grid``, ``random``, ``jobs``, …); returns it with ``job_ids``."""
        key = idempotency_key or str(uuid.uuid4())
        return self._json("POST", "/batches", json=spec, headers={"Idempotency-Key": key})

    def batch(self, batch_id: str, **query: Any) -> dict[str, Any]:
        """Counts, progress, best job and every job's params (``metric=``, ``mode=``)."""
        return self._json("GET", f"/batches/{segment(batch_id)}", params=query)

    def batches(self, **query: Any) -> Iterator[dict[str, Any]]:
        return self._pages("/batches", dict(query))

    def importance(self, batch_id: str, **query: Any) -> dict[str, Any]:
        """Which varied parameter mattered (``metric=``, ``mode=``, ``reduce=``; see
        docs/compare.md for the method and what it cannot tell)."""
        return self._json("GET", f"/batches/{segment(batch_id)}/importance", params=query)

    def cancel_batch(self, batch_id: str) -> dict[str, Any]:
        return self._json("POST", f"/batches/{segment(batch_id)}/cancel")

    def wait_batch(
        self,
        batch_id: str,
        progress: bool = True,
        poll: float = 0.5,
        timeout: float | None = None,
        **query: Any,
    ) -> dict[str, Any]:
        """Poll until every job of the batch has finished; returns the summary (``batch``)."""

        def done(summary: dict[str, Any]) -> bool:
            counts = summary.get("progress") or {}
            return bool(counts) and counts["finished"] >= counts["total"]

        return self._poll(
            f"/batches/{segment(batch_id)}",
            query,
            done,
            lambda summary: (batch_line(summary), str(summary["progress"]["finished"])),
            progress=progress,
            poll=poll,
            timeout=timeout,
        )

    def batch_results(self, batch_id: str, **query: Any) -> pd.DataFrame:
        """One row per job: varied parameters, status and final metrics (needs pandas)."""
        frames.pandas()
        return frames.batch_frame(self.batch(batch_id, **query))

    # --- datasets -----------------------------------------------------------------------

    def upload_dataset(
        self,
        data: str | os.PathLike[str] | tuple[Any, Any],
        *,
        name: str | None = None,
        task: str | None = None,
    ) -> dict[str, Any]:
        """Store a dataset: a ``.csv`` (header, ``target`` column) or ``.npz`` (``X``, ``y``)
        file sent as multipart, or an ``(X, y)`` pair of lists or arrays sent as JSON.

        ``name`` defaults to the file name (``"dataset"`` for arrays); ``task`` to the
        server's default, classification.
        """
        if isinstance(data, str | os.PathLike):
            path = Path(data)
            form = {k: v for k, v in (("name", name), ("task", task)) if v is not None}
            with path.open("rb") as stream:
                return self._json(
                    "POST", "/datasets", data=form, files={"file": (path.name, stream)}
                )
        X, y = data
        body: dict[str, Any] = {"name": name or "dataset", "X": as_list(X), "y": as_list(y)}
        if task is not None:
            body["task"] = task
        return self._json("POST", "/datasets", json=body)

    def dataset(self, dataset_id: str) -> dict[str, Any]:
        return self._json("GET", f"/datasets/{segment(dataset_id)}")

    def dataset_points(
        self, dataset_id: str, max_points: int | None = None, columns: Sequence[int] = ()
    ) -> dict[str, Any]:
        """A fixed sample of a stored dataset's rows for plotting, ``{X, y, total, sampled,
        ...}``: at most ``max_points`` rows (the server's default and cap when None), every
        class kept; ``columns`` picks feature indices (all when empty)."""
        params: dict[str, Any] = {}
        if max_points is not None:
            params["max_points"] = max_points
        if columns:
            params["columns"] = ",".join(str(int(c)) for c in columns)
        return self._json("GET", f"/datasets/{segment(dataset_id)}/points", params=params)

    def datasets(self, **query: Any) -> Iterator[dict[str, Any]]:
        return self._pages("/datasets", dict(query))

    def delete_dataset(self, dataset_id: str) -> None:
        self.transport.request("DELETE", f"/datasets/{segment(dataset_id)}")
