"""Test support shared by the worker, end-to-end and fault suites: real servers and workers.

Import the fixtures into a conftest with ``from tests.support.fixtures import *``.
"""
