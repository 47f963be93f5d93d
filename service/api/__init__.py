"""The HTTP API: one blueprint per resource under ``/api/v1`` (see ``service.app``)."""

API_PREFIX = "/api/v1"
