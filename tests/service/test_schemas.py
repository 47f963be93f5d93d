"""The job spec schema: defaults and error locations (names: tests/service/test_names.py)."""

from __future__ import annotations

import typing

import pytest
from pydantic import ValidationError

from service.problems import from_validation_error
from service.schemas import spec as schemas
from service.schemas.names import SCHEDULES


def test_every_schedule_name_has_a_spec_model():
    adapter_names = {
        typing.get_args(model.model_fields["name"].annotation)[0]
        for model in typing.get_args(typing.get_args(schemas.ScheduleSpec)[0])
    }
    assert adapter_names == set(SCHEDULES)


def test_defaults_are_filled_in():
    spec = schemas.JobSpec.model_validate(
        {
            "network": {"output": {"activation": "sigmoid"}, "loss": "binary_cross_entropy"},
            "dataset": {"generator": "gaussians"},
        }
    ).model_dump(mode="json")
    assert spec["network"]["init"] == {"scheme": "glorot"}
    assert spec["dataset"] == {
        "generator": "gaussians",
        "n_samples": 200,
        "noise": 0.1,
        "seed": 0,
        "n_classes": 3,
        "n_features": 2,
        "validation_split": 0.0,
        "standardize": False,
    }
    assert spec["training"]["lr_schedule"] == {"name": "constant"}
    assert spec["training"]["batch_size"] is None


@pytest.mark.parametrize(
    ("body", "loc"),
    [
        ({"dataset": {"generator": "moons", "noise": -1}}, ["body", "dataset", "noise"]),
        ({"network": {"init": {"weights": {"format": "theta", "layers": [[[1, "x"]]]}}}},
         ["body", "network", "init", "weights", "layers", 0, 0, 1]),
        ({"network": {"init": {"scheme": "xavier"}}}, ["body", "network", "init", "scheme"]),
        ({"training": {"lr_schedule": {"name": "step", "gamma": 2}}},
         ["body", "training", "lr_schedule", "gamma"]),
        ({"training": {"lr_schedule": {"name": "cosine"}}},
         ["body", "training", "lr_schedule", "name"]),
    ],
)  # fmt: skip
def test_error_locations_name_fields_not_union_tags(body, loc):
    base = {
        "network": {"output": {"activation": "softmax"}, "loss": "cross_entropy"},
        "dataset": {"generator": "xor"},
    }
    for part, value in body.items():
        base[part] = {**base[part], **value} if part in base else value
    with pytest.raises(ValidationError) as caught:
        schemas.JobSpec.model_validate(base)
    problem = from_validation_error(caught.value)
    assert problem.errors[0][0] == loc


def test_parameter_count():
    # 2 -> 8 -> 3: (2 + 1) * 8 + (8 + 1) * 3
    assert schemas.parameter_count([2, 8, 3]) == 51
