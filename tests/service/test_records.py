"""The curve point is declared once (``service.schemas.records``): the table's columns,
the engine's epoch statistics and the OpenAPI schema all agree with its fields."""

from __future__ import annotations

import dataclasses

from service.models import CurvePoint
from service.schemas.records import (
    ANSWERED_FIELDS,
    ON_REQUEST_FIELDS,
    POINT_FIELDS,
    CurvePointOut,
    point_from_stats,
    point_values,
)
from worker.nn import EpochStats


def test_the_table_has_a_column_per_field():
    columns = [c.name for c in CurvePoint.__table__.columns]
    assert columns == ["job_id", *POINT_FIELDS]


def test_every_field_is_in_the_engines_point():
    stats = EpochStats(1, 0.5, None, None, None, 0.1, None, None, 0.01)
    assert set(POINT_FIELDS) <= set(stats.to_point())


def test_a_point_from_the_engine_stats():
    stats = EpochStats(
        epoch=3,
        train_loss=0.5,
        val_loss=None,
        train_accuracy=0.75,
        val_accuracy=None,
        learning_rate=0.02,
        grad_norms=[1.0, 2.0],
        update_ratios=[0.1, None],
        seconds=0.25,
    )
    point = point_from_stats(stats)
    assert point_values(point) == {
        "epoch": 3,
        "train_loss": 0.5,
        "val_loss": None,
        "train_accuracy": 0.75,
        "val_accuracy": None,
        "learning_rate": 0.02,
        "grad_norms": {"D": [1.0, 2.0], "update_ratio": [0.1, None]},
        "seconds": 0.25,
    }
    assert point_from_stats(dataclasses.replace(stats, grad_norms=None))["grad_norms"] is None


def test_the_documented_point_is_the_declared_one(client):
    doc = client.get("/api/v1/openapi.json").get_json()
    schema = doc["components"]["schemas"]["CurvePointOut"]
    assert set(schema["properties"]) == set(POINT_FIELDS) == set(CurvePointOut.model_fields)


def test_activation_stats_are_stored_but_answered_only_on_request():
    layers = [
        {"layer": 1, "dead_fraction": 0.25, "saturated_fraction": None, "mean": 0.3, "std": 1}
    ]
    stats = EpochStats(2, 0.5, None, None, None, 0.1, None, None, 0.01, activation_stats=layers)
    point = point_from_stats(stats)
    assert point["activation_stats"] == layers  # what the flush stores
    assert "activation_stats" not in point_values(point)  # what answers hold by default
    assert point_values(point, POINT_FIELDS)["activation_stats"] == layers
    assert ON_REQUEST_FIELDS == ("activation_stats",)
    assert set(ANSWERED_FIELDS) | set(ON_REQUEST_FIELDS) == set(POINT_FIELDS)
