"""docs/backprop.md is what the service returns: regenerate it in memory and compare."""

from __future__ import annotations

import difflib
import importlib.util
from pathlib import Path

import numpy as np

DOCS = Path(__file__).resolve().parents[2] / "docs"


def load_generator():
    spec = importlib.util.spec_from_file_location(
        "make_backprop_doc", DOCS / "make_backprop_doc.py"
    )
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_document_matches_the_service():
    generator = load_generator()
    fresh = generator.render()
    committed = (DOCS / "backprop.md").read_text(encoding="utf-8")
    if fresh != committed:
        diff = "\n".join(
            difflib.unified_diff(
                committed.splitlines(), fresh.splitlines(), "committed", "service", lineterm=""
            )
        )
        raise AssertionError(
            "docs/backprop.md drifted from the service; run "
            f"`.venv/bin/python docs/make_backprop_doc.py`\n{diff[:4000]}"
        )


def test_the_worked_example_is_internally_consistent():
    """The numbers the page is built from obey the page's own claims."""
    generator = load_generator()
    trace, check = generator.call_service()
    m, lam = trace["m"], trace["lambda"]
    for index, layer in enumerate(trace["layers"][:-1]):
        contributions = [np.asarray(e["layers"][index]["contribution"]) for e in trace["examples"]]
        np.testing.assert_allclose(sum(contributions), layer["Delta"], rtol=1e-12)
        theta = np.asarray(layer["Theta"])
        expected = np.asarray(layer["Delta"]) / m + lam / m * np.column_stack(
            [np.zeros(theta.shape[0]), theta[:, 1:]]
        )
        np.testing.assert_allclose(layer["D"], expected, rtol=1e-12)
        np.testing.assert_allclose(layer["D"], check["numerical"][index], rtol=1e-7, atol=1e-10)
    assert check["passed"] is True
    assert check["relative_difference"] < 1e-9
