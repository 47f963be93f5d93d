"""service.build: a job's run is built from its validated JobSpec, with the API's defaults.

The engine keeps defaults of its own for notebook use (TrainingConfig, the optimizers,
the schedules, EarlyStopping, the init scheme); these tests prove they equal the API's
pydantic defaults, so the two can never drift apart unnoticed.
"""

from __future__ import annotations

import dataclasses
import inspect

import numpy as np
import pytest

from service import generators
from service.build import in_classes_of, network, prepare, training_config
from service.dataset_arrays import DatasetArrays
from service.schemas import spec as schemas
from worker.nn import (
    OPTIMIZERS,
    SCHEDULES,
    EarlyStopping,
    Network,
    TrainingConfig,
    network_from_spec,
)


def defaults(cls, *skip: str) -> dict:
    """Keyword defaults of a constructor (its **kwargs and ``skip`` left out)."""
    return {
        name: p.default
        for name, p in inspect.signature(cls).parameters.items()
        if p.default is not inspect.Parameter.empty and name not in skip
    }


def test_the_engine_training_defaults_equal_the_api_defaults():
    api, optimizer = schemas.TrainingSpec(), schemas.OptimizerSpec()
    engine = TrainingConfig()
    assert engine.optimizer == optimizer.name
    for name in ("learning_rate", "momentum", "beta1", "beta2", "epsilon"):
        assert getattr(engine, name) == getattr(optimizer, name), name
    for name in ("epochs", "batch_size", "l2", "seed", "early_stopping"):
        assert getattr(engine, name) == getattr(api, name), name
    assert engine.lr_schedule == api.lr_schedule.model_dump()
    assert engine.record_grad_norms == api.record.grad_norms
    assert engine.record_activations == api.record.activations
    assert engine.validation_split == schemas.DatasetOptions().validation_split
    assert dataclasses.asdict(EarlyStopping()) == schemas.EarlyStoppingSpec().model_dump()
    assert TrainingConfig.from_spec({}) == engine


def test_the_optimizer_and_schedule_defaults_equal_the_api_defaults():
    optimizer = schemas.OptimizerSpec().model_dump()
    for name, cls in OPTIMIZERS.items():
        for parameter, value in defaults(cls).items():
            assert value == optimizer[parameter], (name, parameter)
    specs = {"step": schemas.StepSchedule, "inverse_scaling": schemas.InverseScalingSchedule,
             "plateau": schemas.PlateauSchedule, "constant": schemas.ConstantSchedule}  # fmt: skip
    assert set(specs) == set(SCHEDULES)
    for name, cls in SCHEDULES.items():
        api = specs[name](name=name).model_dump()
        assert defaults(cls, "learning_rate") == {k: v for k, v in api.items() if k != "name"}


def test_the_engine_init_scheme_default_is_the_api_default():
    scheme = schemas.InitScheme().scheme
    assert defaults(Network.initialized)["scheme"] == scheme


def job(**changes) -> schemas.JobSpec:
    spec = {
        "network": {
            "layers": [{"units": 5, "activation": "relu"}],
            "output": {"activation": "softmax"},
            "loss": "cross_entropy",
        },
        "dataset": {"generator": "spirals", "n_samples": 40, "validation_split": 0.25},
        "training": {"optimizer": {"name": "momentum"}, "seed": 11, "epochs": 3},
    }
    for part, value in changes.items():
        spec[part] = {**spec[part], **value}
    return schemas.JobSpec.model_validate(spec)


def test_every_config_field_comes_from_the_spec():
    spec = job(
        training={
            "early_stopping": {"patience": 4},
            "lr_schedule": {"name": "step"},
            "record": {"grad_norms": True, "activations": True},
        }
    )
    stored = spec.model_dump(mode="json")
    expected = TrainingConfig.from_spec(
        stored["training"], validation_split=0.25, classification=True
    )
    expected = dataclasses.replace(expected, stratify=True)  # the service's splits always are
    assert training_config(spec, classification=True) == expected


@pytest.mark.parametrize("init", [{"scheme": "he"}, {"scheme": "zeros"}, "theta", "wb"])
def test_the_network_is_the_one_the_engine_builds_from_the_same_spec(init):
    rng = np.random.default_rng(3)
    if init == "theta":  # Ng's layout for 2 -> 5 -> 3: Θ1 (5, 3), Θ2 (3, 6)
        thetas = [rng.normal(size=shape).tolist() for shape in ((5, 3), (3, 6))]
        init = {"weights": {"format": "theta", "layers": thetas}}
    elif init == "wb":
        layers = [
            {"W": rng.normal(size=(n_in, n_out)).tolist(), "b": rng.normal(size=n_out).tolist()}
            for n_in, n_out in ((2, 5), (5, 3))
        ]
        init = {"weights": {"format": "wb", "layers": layers}}
    spec = job(network={"init": init}, training={"dtype": "float32"})
    built = network(spec, 2, 3)
    stored = spec.model_dump(mode="json")
    reference = network_from_spec(
        stored["network"], 2, 3, rng=np.random.default_rng(11), dtype="float32"
    )
    assert built.dtype == np.float32
    assert built.flat_parameters.tobytes() == reference.flat_parameters.tobytes()


def test_prepare_validates_the_stored_spec_and_standardizes_the_training_split():
    spec = job(dataset={"standardize": True}).model_dump(mode="json")
    prepared = prepare(spec, generators.generate(spec["dataset"]))
    assert isinstance(prepared.spec, schemas.JobSpec)
    X_train = prepared.trainer.X_train
    assert np.allclose(X_train.mean(axis=0), 0.0)
    assert np.allclose(X_train.std(axis=0), 1.0)
    assert prepared.standardization is not None
    assert prepared.trainer.Y_train.shape == (30, 3)


def test_a_validation_sets_classes_are_renumbered_into_the_training_sets():
    train = DatasetArrays(
        np.arange(12.0).reshape(6, 2),
        np.array([0, 1, 2, 0, 1, 2]),
        "classification",
        ["a", "b", "c"],
    )
    held_out = DatasetArrays(np.ones((3, 2)), np.array([1, 0, 1]), "classification", ["b", "c"])
    renumbered = in_classes_of(held_out, train)
    assert renumbered.classes == ["a", "b", "c"]
    assert renumbered.y.tolist() == [2, 1, 2]
    run = prepare(job(dataset={"validation_split": 0.0}).model_dump(mode="json"), train, held_out)
    assert run.trainer.Y_val.tolist() == [[0, 0, 1], [0, 1, 0], [0, 0, 1]]
    assert run.trainer.X_train.shape == (6, 2)  # nothing split off
