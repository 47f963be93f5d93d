"""The query of a paginated list: ``?limit=&cursor=`` (the pages: ``service.cursors``)."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field


class PageQuery(BaseModel):
    """``?limit=&cursor=`` (subclass it, keeping the ``Query`` suffix, to add filters).

    Unknown query parameters are 422: a misspelt filter must not silently list everything.
    """

    model_config = ConfigDict(extra="forbid")

    limit: int | None = Field(default=None, ge=1, description="Page size (capped by the server).")
    cursor: str | None = Field(default=None, max_length=200, description="From the last page.")
