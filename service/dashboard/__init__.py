"""The dashboard: a static page served at ``/`` that uses only the public API."""

from __future__ import annotations

from pathlib import Path

from flask import Flask, Response, send_from_directory

STATIC_DIR = Path(__file__).resolve().parent / "static"


def _plotly_dir() -> Path:
    # Plotly.js ships inside the plotly Python package: installed, never pasted here.
    import plotly

    return Path(plotly.__file__).resolve().parent / "package_data"


def init_app(app: Flask) -> None:
    @app.get("/")
    def dashboard_index() -> Response:
        return send_from_directory(STATIC_DIR, "index.html", max_age=0)

    # Flask registers its own "/static/<path:filename>" route whenever the app has a static
    # folder (the default), and that route wins the match: point it at the dashboard's files.
    app.static_folder = str(STATIC_DIR)
    if "static" not in app.view_functions:

        @app.get("/static/<path:filename>")
        def dashboard_static(filename: str) -> Response:
            return send_from_directory(STATIC_DIR, filename, max_age=0)

    @app.get("/vendor/plotly.min.js")
    def dashboard_plotly() -> Response:
        return send_from_directory(_plotly_dir(), "plotly.min.js", max_age=86400)
