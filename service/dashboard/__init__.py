"""The dashboard: a static page served at ``/`` that uses only the public API."""

from __future__ import annotations

import gzip
import logging
from functools import lru_cache
from pathlib import Path

from flask import Flask, Response, abort, request, send_from_directory
from werkzeug.security import safe_join

STATIC_DIR = Path(__file__).resolve().parent / "static"
# Front-end packages are installed, never committed: `npm ci` in the Deltaflow folder (the
# Makefile's install step, which `make run` and `make test` take) fills node_modules/ from
# package.json and package-lock.json.
NODE_MODULES = Path(__file__).resolve().parents[2] / "node_modules"
# Plotly's cartesian bundle: scatter, bar and heatmap (every trace type the dashboard
# draws) in ~1.5 MB, where the full bundle is 4.8 MB and takes seconds to parse on a busy
# machine (docs/benchmarks.md, issue 20).
CARTESIAN = NODE_MODULES / "plotly.js-cartesian-dist-min" / "plotly-cartesian.min.js"
# Files at least this large go gzipped to a browser that accepts it: each is compressed
# once per process, so even a module of a few kB is worth it (the page loads ~30).
GZIP_MIN_BYTES = 1024
GZIP_LEVEL = 6

log = logging.getLogger(__name__)


def _full_plotly() -> Path:
    # The full bundle ships inside the plotly Python package: the fallback.
    import plotly

    return Path(plotly.__file__).resolve().parent / "package_data" / "plotly.min.js"


@lru_cache(maxsize=1)
def plotly_bundle() -> Path:
    """The Plotly bundle the dashboard loads: the cartesian one from node_modules, or the
    plotly package's full one (said once in the log) where npm has not installed it."""
    if CARTESIAN.is_file():
        return CARTESIAN
    log.warning(
        "%s is not installed (run `npm ci` in the Deltaflow folder; `make run` does): "
        "the dashboard serves the plotly package's full bundle, 4.8 MB, slower to load",
        CARTESIAN,
    )
    return _full_plotly()


@lru_cache(maxsize=64)
def _gzipped(path: Path, mtime_ns: int) -> bytes:
    return gzip.compress(path.read_bytes(), compresslevel=GZIP_LEVEL, mtime=0)


def _send(path: Path, max_age: int) -> Response:
    """``path`` with its validators (ETag, Last-Modified) and ``max_age``; gzipped (once per
    file version and process) when large and the browser accepts it."""
    response = send_from_directory(path.parent, path.name, max_age=max_age)
    if path.stat().st_size < GZIP_MIN_BYTES:
        return response
    response.vary.add("Accept-Encoding")
    if response.status_code != 200 or not request.accept_encodings["gzip"]:
        return response
    response.close()
    body = _gzipped(path, path.stat().st_mtime_ns)
    response.direct_passthrough = False
    response.set_data(body)
    response.headers["Content-Encoding"] = "gzip"
    # A different body from the plain file's: a different validator.
    etag, weak = response.get_etag()
    if etag:
        response.set_etag(f"{etag}-gz", weak=weak)
    return response.make_conditional(request)


def _module_preloads() -> str:
    """A Link header naming every module of the page: the browser asks for them all at once
    instead of level by level as it finds each module's imports (five levels deep)."""
    return ", ".join(
        f"</static/{path.name}>; rel=modulepreload" for path in sorted(STATIC_DIR.glob("*.js"))
    )


def init_app(app: Flask) -> None:
    preloads = _module_preloads()

    @app.get("/")
    def dashboard_index() -> Response:
        response = send_from_directory(STATIC_DIR, "index.html", max_age=0)
        response.headers["Link"] = preloads
        return response

    def dashboard_static(filename: str) -> Response:
        path = safe_join(str(STATIC_DIR), filename)
        if path is None or not Path(path).is_file():
            abort(404)
        return _send(Path(path), max_age=0)

    # Flask registers its own "/static/<path:filename>" route whenever the app has a static
    # folder (the default), and that route wins the match: it serves the dashboard's files.
    app.static_folder = str(STATIC_DIR)
    if "static" in app.view_functions:
        app.view_functions["static"] = dashboard_static
    else:
        app.add_url_rule("/static/<path:filename>", "static", dashboard_static)

    @app.get("/vendor/plotly.min.js")
    def dashboard_plotly() -> Response:
        return _send(plotly_bundle(), max_age=86400)
