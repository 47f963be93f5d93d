"""The one way to make an API blueprint: authenticated, JSON-checked, documented."""

from __future__ import annotations

from flask_openapi3 import APIBlueprint, Tag

from service.api import API_PREFIX
from service.api.auth import SECURITY, require_tenant
from service.api.requests import require_wellformed_json


def api_blueprint(name: str, import_name: str, url_prefix: str, tag: str) -> APIBlueprint:
    """A blueprint whose every request is authenticated (401 first) and, if JSON, parsed (400).

    ``url_prefix`` is relative to ``/api/v1``; register it with ``app.register_api(bp)``.
    """

    bp = APIBlueprint(
        name,
        import_name,
        url_prefix=API_PREFIX + url_prefix,
        abp_tags=[Tag(name=tag)],
        abp_security=SECURITY,
    )
    bp.before_request(require_tenant)
    bp.before_request(require_wellformed_json)
    return bp
