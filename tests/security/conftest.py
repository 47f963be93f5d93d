"""The hostile-tenant suite (issue 11): the API tests' fixtures (``tests/service``) and the
end-to-end ones (real API server, backends, ``tests/support``) for the tests here.

tests/ is not a package: pytest loads each directory's conftest by path, so the fixtures
of tests/service/conftest.py are re-exported from it by module name here.
"""

import sys
from pathlib import Path

# Make the repository root importable for ``tests.support`` (see tests/worker/conftest.py).
_ROOT = str(Path(__file__).resolve().parents[2])
if _ROOT not in sys.path:
    sys.path.insert(0, _ROOT)

from tests.service.conftest import *  # noqa: E402,F403
from tests.support.fixtures import *  # noqa: E402,F403
