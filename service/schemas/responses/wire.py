"""What every response does to a row on its way to JSON: read the model's fields from it
(``fields_of``, so a field is declared once, on the model) and drop non-finite floats."""

from __future__ import annotations

import math
from typing import Any

from pydantic import BaseModel


def finite(value: Any) -> Any:
    """JSON has no NaN or infinity: turn them into null, recursively."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: finite(v) for k, v in value.items()}
    if isinstance(value, list):
        return [finite(v) for v in value]
    return value


def fields_of(model: type[BaseModel], row: Any, **computed: Any) -> dict[str, Any]:
    """The response model's fields, in its order: ``computed`` ones as given, the rest read
    from ``row`` by name (so a field is declared once, on the model)."""
    return {
        name: computed[name] if name in computed else getattr(row, name)
        for name in model.model_fields
    }
