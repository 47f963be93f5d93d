"""``/api/v1/datasets``: upload (JSON, CSV or NPZ), list, read, delete."""

from __future__ import annotations

from typing import Any

from flask import Response, request, url_for
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from service import dataset_files, dataset_points, datasets
from service.api import plumbing
from service.api.openapi import (
    conditional_get,
    document_body,
    json_response,
    problems,
    register_models,
)
from service.api.plumbing import (
    ConditionalHeaders,
    PageQuery,
    RequestModel,
    api_blueprint,
    no_content,
    not_modified,
    respond,
)
from service.config import Limits
from service.dataset_arrays import DatasetArrays
from service.problems import Invalid, from_validation_error
from service.schemas.names import Task
from service.schemas.responses.datasets import (
    DatasetList,
    DatasetOut,
    DatasetPointsOut,
    dataset_dict,
)
from service.schemas.spec import Label, Matrix

bp = api_blueprint("datasets", __name__, "/datasets", tag="datasets")
register_models(bp, DatasetOut)


class DatasetPath(BaseModel):
    dataset_id: str = Field(max_length=64)


class DatasetListQuery(PageQuery):
    pass


class PointsQuery(RequestModel):
    """``?max_points=&columns=`` (the cap is a setting: checked by ``service.dataset_points``)."""

    model_config = ConfigDict(extra="forbid")

    max_points: int | None = Field(
        default=None,
        ge=1,
        description="At most this many rows (1 to DELTAFLOW_MAX_DATASET_POINTS, also the "
        "default); fewer for a wide dataset (DELTAFLOW_MAX_DATASET_POINT_VALUES).",
    )
    columns: str | None = Field(
        default=None,
        max_length=30_000,
        description="Comma list of feature indices to return, e.g. `0,1` (default: all).",
    )


class DatasetMeta(BaseModel):
    """The name and task of an upload (validated before the arrays, which numpy checks)."""

    name: str = Field(min_length=1, max_length=200)
    task: Task = "classification"


class DatasetCreate(BaseModel):
    """JSON upload: X of shape (n_samples, n_features) and labels or targets y."""

    name: str = Field(min_length=1, max_length=200)
    task: Task = "classification"
    X: Matrix
    y: list[Label] | Matrix


UPLOAD_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["file"],
    "properties": {
        "file": {
            "type": "string",
            "format": "binary",
            "description": ".csv (header + a 'target' column) or .npz (arrays X and y)",
        },
        "name": {"type": "string", "minLength": 1, "maxLength": 200},
        "task": {"type": "string", "enum": ["classification", "regression"]},
    },
}


@bp.post(
    "",
    summary="Store a dataset (JSON body, or a multipart .csv / .npz file)",
    responses={
        201: json_response(DatasetOut, "Stored", {"Location": "The dataset's URL"}),
        **problems(400, 409, 413, 429),
    },
)
def create_dataset() -> Response:
    settings = plumbing.settings()
    if request.mimetype == "multipart/form-data":
        meta, arrays = _from_upload(settings.limits)
    else:
        meta, arrays = _from_json(settings.limits)
    dataset = datasets.create_dataset(
        plumbing.db(), plumbing.tenant_id(), meta.name, arrays, plumbing.quota_defaults()
    )
    location = url_for("datasets.get_dataset", dataset_id=dataset.id)
    return respond(dataset_dict(dataset), 201, headers={"Location": location})


document_body(
    bp, "", "post", {"application/json": DatasetCreate, "multipart/form-data": UPLOAD_SCHEMA}
)


def _meta(values: dict[str, Any]) -> DatasetMeta:
    try:
        return DatasetMeta.model_validate(values)
    except ValidationError as error:
        raise from_validation_error(error, prefix=("body",)) from None


def _from_json(limits: Limits) -> tuple[DatasetMeta, DatasetArrays]:
    body = request.get_json(silent=True)
    if not isinstance(body, dict):
        raise Invalid.at(["body"], "send a JSON object {name, task, X, y} or a multipart file")
    meta = _meta({k: body[k] for k in ("name", "task") if k in body})
    return meta, dataset_files.read_json(body, meta.task, limits)


def _from_upload(limits: Limits) -> tuple[DatasetMeta, DatasetArrays]:
    upload = request.files.get("file")
    if upload is None:
        raise Invalid.at(["body", "file"], "a multipart upload needs a 'file' part")
    filename = upload.filename or "upload"
    form = {k: v for k, v in request.form.items() if k in ("name", "task")}
    form.setdefault("name", filename.rsplit("/", 1)[-1][:200] or "upload")
    meta = _meta(form)
    return meta, dataset_files.read_upload(filename, upload.read(), meta.task, limits)


@bp.get("", summary="List datasets, newest first", responses={200: DatasetList, **problems()})
def list_datasets(query: DatasetListQuery) -> Response:
    items, next_cursor = datasets.list_datasets(
        plumbing.db(),
        plumbing.tenant_id(),
        query.limit,
        query.cursor,
        plumbing.settings().limits.page_size,
    )
    return respond({"items": [dataset_dict(d) for d in items], "next_cursor": next_cursor})


@bp.get(
    "/<dataset_id>",
    summary="A dataset's metadata",
    responses={200: DatasetOut, **problems(404)},
)
def get_dataset(path: DatasetPath) -> Response:
    dataset = datasets.get_dataset(plumbing.db(), plumbing.tenant_id(), path.dataset_id)
    return respond(dataset_dict(dataset))


@bp.get(
    "/<dataset_id>/points",
    summary="A bounded, deterministic sample of a dataset's points, for plotting",
    responses=conditional_get(
        DatasetPointsOut, "The sampled points", "Changes with the ask (the data never changes)"
    ),
)
def get_dataset_points(
    path: DatasetPath, query: PointsQuery, header: ConditionalHeaders
) -> Response:
    session = plumbing.db()
    dataset = datasets.get_dataset(session, plumbing.tenant_id(), path.dataset_id)
    asked = dataset_points.ask(dataset, query.max_points, query.columns, plumbing.settings().limits)
    tag = asked.tag(dataset)
    return not_modified(tag) or respond(
        dataset_points.dataset_points(session, dataset, asked), etag=tag
    )


@bp.delete(
    "/<dataset_id>",
    summary="Delete a dataset no unfinished job uses (finished jobs stay readable)",
    responses={204: None, **problems(404, 409)},
)
def delete_dataset(path: DatasetPath) -> Response:
    datasets.delete_dataset(plumbing.db(), plumbing.tenant_id(), path.dataset_id)
    return no_content()
