"""Worker tests use the shared real-backend fixtures of tests/support."""

import sys
from pathlib import Path

# tests/worker has no __init__.py (a package named "worker" would shadow the real one),
# so make the repository root importable for ``tests.support``.
_ROOT = str(Path(__file__).resolve().parents[2])
if _ROOT not in sys.path:
    sys.path.insert(0, _ROOT)

from tests.support.fixtures import *  # noqa: E402,F403
