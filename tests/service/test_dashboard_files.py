"""The dashboard's files: Plotly's cartesian bundle from node_modules (installed by
`npm ci`, never committed) or, where it is absent, the plotly package's full bundle;
large text files gzipped for a browser that accepts it, with their own validators."""

from __future__ import annotations

import gzip
import logging
import os

import pytest

from service import dashboard

GZIP = {"Accept-Encoding": "gzip"}


def _plotly(client, headers=None):
    response = client.get("/vendor/plotly.min.js", headers=headers or {})
    body = response.get_data()
    response.close()
    return response, body


@pytest.fixture
def bundle_cleared():
    dashboard.plotly_bundle.cache_clear()
    yield
    dashboard.plotly_bundle.cache_clear()


@pytest.mark.skipif(
    not dashboard.CARTESIAN.is_file() and os.environ.get("CI") != "true",
    reason="npm ci (make run, make test) has not installed node_modules",
)
def test_plotly_is_the_cartesian_bundle_gzipped_and_cached(client, bundle_cleared):
    response, body = _plotly(client, GZIP)
    assert response.status_code == 200
    assert response.headers["Content-Encoding"] == "gzip"
    assert "Accept-Encoding" in response.headers["Vary"]
    assert response.headers["Cache-Control"] == "public, max-age=86400"
    assert gzip.decompress(body) == dashboard.CARTESIAN.read_bytes()
    assert len(body) < 600_000  # ~500 kB: a third of the full bundle's 1.5 MB gzipped
    # Asked again with its validator: 304, no body.
    again = client.get(
        "/vendor/plotly.min.js", headers={**GZIP, "If-None-Match": response.headers["ETag"]}
    )
    assert again.status_code == 304
    assert again.get_data() == b""
    # A client that does not take gzip gets the file as it is, under another validator.
    plain, plain_body = _plotly(client)
    assert "Content-Encoding" not in plain.headers
    assert plain_body == dashboard.CARTESIAN.read_bytes()
    assert plain.headers["ETag"] != response.headers["ETag"]


def test_without_node_modules_the_full_bundle_is_served_and_said(
    client, bundle_cleared, monkeypatch, tmp_path, caplog
):
    monkeypatch.setattr(dashboard, "CARTESIAN", tmp_path / "missing.min.js")
    with caplog.at_level(logging.WARNING, logger="service.dashboard"):
        response, body = _plotly(client, GZIP)
    assert response.status_code == 200
    assert gzip.decompress(body) == dashboard._full_plotly().read_bytes()
    assert "npm ci" in caplog.text


def test_modules_go_gzipped_and_small_files_and_strays_do_not(client):
    response = client.get("/static/batch.js", headers=GZIP)
    body = response.get_data()
    assert response.status_code == 200
    assert response.headers["Content-Encoding"] == "gzip"
    assert response.mimetype == "text/javascript"
    assert gzip.decompress(body) == (dashboard.STATIC_DIR / "batch.js").read_bytes()
    assert "script-src 'self';" in response.headers["Content-Security-Policy"]
    small = client.get("/static/router.js", headers=GZIP)
    assert "Content-Encoding" not in small.headers
    assert small.get_data() == (dashboard.STATIC_DIR / "router.js").read_bytes()
    small.close()
    for stray in ("/static/../app.py", "/static/nope.js", "/static/"):
        assert client.get(stray, headers=GZIP).status_code == 404


def test_the_page_names_every_module_for_preloading(client):
    response = client.get("/")
    response.close()
    links = response.headers["Link"].split(", ")
    modules = sorted(path.name for path in dashboard.STATIC_DIR.glob("*.js"))
    assert links == [f"</static/{name}>; rel=modulepreload" for name in modules]
    assert "main.js" in modules
