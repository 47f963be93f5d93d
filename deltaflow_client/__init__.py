"""Deltaflow's Python client: ``Client(url, key)`` over the HTTP API, one error class.

It depends on ``requests`` only (pandas, when installed, for DataFrames) and never
imports the server's packages, so it can be installed on any machine that talks to a
Deltaflow server. The ``deltaflow-client`` command (and ``deltaflow jobs|batches|datasets``)
is ``deltaflow_client.cli``.
"""

from deltaflow_client.client import Client
from deltaflow_client.errors import DeltaflowError

__all__ = ["Client", "DeltaflowError"]
