"""Shapes: every name, spec, record and response of Deltaflow, each declared once.

- ``names``: the vocabularies (statuses, queues, metrics, generators, activations, …);
- ``spec``: the job spec (network, dataset, training) and the body of ``POST /jobs``;
- ``records``: the curve point, as stored, flushed and served;
- ``batch``: the body of ``POST /batches`` and the scheduler specs;
- ``backprop``: the bodies of the backprop endpoints;
- ``insight``: a job's diagnostics and the learning-rate finder's bodies;
- ``webhooks``: the subscription a tenant posts and every webhook answer;
- ``responses``: every response model and the function that fills it, one module per
  resource (``responses.jobs``, ``responses.batches``, …).

Import from the submodule that declares a shape; this package re-exports nothing.
"""
