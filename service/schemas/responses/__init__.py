"""Every response: its model (documented in OpenAPI) and the function that fills it, one
module per resource.

Together they answer "what does a job (a dataset, a batch, a curve, a model) look like on
the wire". Views call a domain function and dump its result with a function from here.

- ``wire``: what every answer does to a row (``fields_of``, ``finite``);
- ``datasets``, ``jobs`` (a job, its progress and summary), ``curves`` (a job's curve, a
  batch's curves), ``trained`` (a model and its predictions);
- ``batches`` (a batch, its list, summary and cancel), ``compare`` (band, nearest,
  importance: comparing a batch's jobs);
- ``meta``, ``health``, ``quota``.

Import from the module that declares a response; this package re-exports nothing.
"""
