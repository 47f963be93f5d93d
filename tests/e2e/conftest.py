"""End-to-end fixtures: the real API (Flask app in the test process) and real workers."""

import sys
from pathlib import Path

# Make the repository root importable for ``tests.support`` (see tests/worker/conftest.py).
_ROOT = str(Path(__file__).resolve().parents[2])
if _ROOT not in sys.path:
    sys.path.insert(0, _ROOT)

from tests.support.fixtures import *  # noqa: E402,F403
from tests.support.http import api  # noqa: E402,F401
