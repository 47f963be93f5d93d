"""Pydantic specs of a job: network, dataset and training (the shape ``jobs.spec`` stores).

These models check types, names and ranges; the names come from ``schemas.names``.
Checks that need the dataset or the configured limits (weight shapes, parameter counts,
epochs) live in ``service.validation``. The defaults here are the only ones: the worker
builds every run from a validated ``JobSpec`` (``service.build``), and a test proves the
engine's own defaults for notebook use equal these.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Discriminator, Field, Tag, model_validator

from service.schemas.names import (
    GENERATORS,
    SCHEDULES,
    Dtype,
    HiddenActivation,
    InitSchemeName,
    LossName,
    OptimizerName,
    OutputActivation,
    Task,
)

# Tags of tagged unions: pydantic puts them into error locations; ``problems`` strips them
# so a client sees ["body", "dataset", "n_samples"], not [..., "dataset", "spirals", ...].
UNION_TAGS = frozenset(
    {
        "stored_dataset",
        "generated_dataset",
        "inline_dataset",
        "init_scheme",
        "init_weights",
        "theta",
        "wb",
        *GENERATORS,
        *SCHEDULES,
    }
)

Finite = Annotated[float, Field(allow_inf_nan=False)]
Matrix = list[list[Finite]]


class Strict(BaseModel):
    """Unknown fields are errors (a typo must not silently become a default)."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)


# --- network -------------------------------------------------------------------------


class LayerSpec(Strict):
    units: int = Field(ge=1, description="Units of this hidden layer.")
    activation: HiddenActivation = "tanh"


class OutputSpec(Strict):
    activation: OutputActivation
    units: Literal[1] | None = Field(
        default=None,
        description=(
            "1 with a sigmoid output: a two-class problem on one unit, Ng's way (its output "
            "is P(second class)). Absent: one unit per class, or per regression target."
        ),
    )


class InitScheme(Strict):
    scheme: InitSchemeName = "glorot"


class WbLayer(Strict):
    W: Matrix = Field(description="Shape (n_in, n_out).")
    b: list[Finite] = Field(description="Shape (n_out,).")


class ThetaWeights(Strict):
    format: Literal["theta"]
    layers: list[Matrix] = Field(
        min_length=1, description="Ng's Θ per layer: shape (n_out, n_in + 1), bias in column 0."
    )


class WbWeights(Strict):
    format: Literal["wb"]
    layers: list[WbLayer] = Field(min_length=1)


class InitWeights(Strict):
    weights: Annotated[ThetaWeights | WbWeights, Field(discriminator="format")]


def _init_kind(value: Any) -> str:
    if isinstance(value, dict):
        return "init_weights" if "weights" in value else "init_scheme"
    return "init_weights" if isinstance(value, InitWeights) else "init_scheme"


InitSpec = Annotated[
    Annotated[InitScheme, Tag("init_scheme")] | Annotated[InitWeights, Tag("init_weights")],
    Discriminator(_init_kind),
]


class NetworkSpec(Strict):
    layers: list[LayerSpec] = Field(
        default_factory=list,
        description="Hidden layers; input and output sizes come from the data.",
    )
    output: OutputSpec
    loss: LossName
    init: InitSpec = Field(default_factory=InitScheme)


# --- dataset -------------------------------------------------------------------------

ValidationSplit = Annotated[float, Field(ge=0.0, lt=1.0)]


class DatasetOptions(Strict):
    validation_split: ValidationSplit = 0.0
    standardize: bool = False


class ValidationSetSpec(Strict):
    id: str = Field(
        min_length=1,
        max_length=64,
        description="A stored dataset with the training set's task and columns (its labels "
        "among the training set's classes).",
    )


class StoredDatasetSpec(DatasetOptions):
    id: str = Field(min_length=1, max_length=64)
    validation: ValidationSetSpec | None = Field(
        default=None,
        description="Validate on this stored dataset instead of a split of the training one "
        "(validation_split must then be 0).",
    )
    inline: bool = Field(
        default=False,
        exclude=True,
        description="Set by the service in a job's stored spec: X and y came inline with "
        "the job and were stored as this dataset (the same data, the same dataset).",
    )


class _GeneratorBase(DatasetOptions):
    n_samples: int = Field(default=200, ge=4)
    noise: float = Field(default=0.1, ge=0.0, le=10.0, allow_inf_nan=False)
    seed: int = Field(default=0, ge=0, le=2**32 - 1)


class XorSpec(_GeneratorBase):
    generator: Literal["xor"]


class CirclesSpec(_GeneratorBase):
    generator: Literal["circles"]
    factor: float = Field(default=0.5, gt=0.0, lt=1.0, description="Inner radius / outer radius.")


class MoonsSpec(_GeneratorBase):
    generator: Literal["moons"]


class SpiralsSpec(_GeneratorBase):
    generator: Literal["spirals"]
    n_classes: int = Field(default=3, ge=2, le=20)


class GaussiansSpec(_GeneratorBase):
    generator: Literal["gaussians"]
    n_classes: int = Field(default=3, ge=2, le=50)
    n_features: int = Field(default=2, ge=1, le=1000)


class PlaneSpec(_GeneratorBase):
    generator: Literal["plane"]
    n_features: int = Field(default=2, ge=1, le=1000)


class SineSpec(_GeneratorBase):
    generator: Literal["sine"]


GeneratorSpec = Annotated[
    XorSpec | CirclesSpec | MoonsSpec | SpiralsSpec | GaussiansSpec | PlaneSpec | SineSpec,
    Field(discriminator="generator"),
]

Label = Annotated[int, Field(strict=True)] | Annotated[str, Field(max_length=200)] | Finite


class InlineDatasetSpec(DatasetOptions):
    X: Matrix = Field(min_length=2, description="Shape (n_samples, n_features).")
    y: list[Label] | Matrix = Field(
        min_length=2, description="Class labels, or real targets of shape (n,) or (n, k)."
    )
    task: Task | None = Field(
        default=None,
        description="Inferred when absent: integer or string labels mean classification.",
    )


def _dataset_kind(value: Any) -> str:
    if isinstance(value, dict):
        if "id" in value:
            return "stored_dataset"
        return "generated_dataset" if "generator" in value else "inline_dataset"
    if isinstance(value, StoredDatasetSpec):
        return "stored_dataset"
    return "inline_dataset" if isinstance(value, InlineDatasetSpec) else "generated_dataset"


DatasetSpec = Annotated[
    Annotated[StoredDatasetSpec, Tag("stored_dataset")]
    | Annotated[GeneratorSpec, Tag("generated_dataset")]
    | Annotated[InlineDatasetSpec, Tag("inline_dataset")],
    Discriminator(_dataset_kind),
]


# --- training ------------------------------------------------------------------------


class OptimizerSpec(Strict):
    name: OptimizerName = "adam"
    learning_rate: float = Field(default=0.01, gt=0.0, le=1e3, allow_inf_nan=False)
    momentum: float = Field(default=0.9, ge=0.0, lt=1.0)
    beta1: float = Field(default=0.9, ge=0.0, lt=1.0)
    beta2: float = Field(default=0.999, ge=0.0, lt=1.0)
    epsilon: float = Field(default=1e-8, gt=0.0, le=1.0, allow_inf_nan=False)


class EarlyStoppingSpec(Strict):
    patience: int = Field(default=20, ge=1)
    min_delta: float = Field(default=1e-4, ge=0.0, allow_inf_nan=False)


class ConstantSchedule(Strict):
    name: Literal["constant"]


class StepSchedule(Strict):
    name: Literal["step"]
    step_size: int = Field(default=100, ge=1)
    gamma: float = Field(default=0.5, gt=0.0, le=1.0)


class InverseScalingSchedule(Strict):
    name: Literal["inverse_scaling"]
    power: float = Field(default=0.5, gt=0.0, le=10.0)


class PlateauSchedule(Strict):
    name: Literal["plateau"]
    factor: float = Field(default=0.5, gt=0.0, lt=1.0)
    patience: int = Field(default=10, ge=1)
    min_delta: float = Field(default=1e-4, ge=0.0, allow_inf_nan=False)
    min_lr: float = Field(default=1e-6, ge=0.0, allow_inf_nan=False)


ScheduleSpec = Annotated[
    ConstantSchedule | StepSchedule | InverseScalingSchedule | PlateauSchedule,
    Field(discriminator="name"),
]


class RecordSpec(Strict):
    grad_norms: bool = Field(
        default=False, description="Per layer ‖D‖ and update ratio of each epoch's last batch."
    )
    activations: bool = Field(
        default=False,
        description="Per layer dead and saturated fractions, mean and std of the activations "
        "of each epoch's last batch (curve field activation_stats; docs/diagnostics.md).",
    )


class TrainingSpec(Strict):
    optimizer: OptimizerSpec = Field(default_factory=OptimizerSpec)
    epochs: int = Field(default=100, ge=1)
    batch_size: int | None = Field(default=None, ge=1, description="null means full batch.")
    l2: float = Field(default=0.0, ge=0.0, le=1e6, allow_inf_nan=False)
    seed: int = Field(default=0, ge=0, le=2**32 - 1)
    early_stopping: EarlyStoppingSpec | None = None
    lr_schedule: ScheduleSpec = Field(default_factory=lambda: ConstantSchedule(name="constant"))
    dtype: Dtype = "float64"
    record: RecordSpec = Field(default_factory=RecordSpec)
    gradient_check: bool = Field(
        default=False, description="Check the gradients numerically before training."
    )


# --- the job -------------------------------------------------------------------------


class JobSpec(Strict):
    network: NetworkSpec
    dataset: DatasetSpec
    training: TrainingSpec = Field(default_factory=TrainingSpec)


class JobSubmit(JobSpec):
    """The body of ``POST /jobs``: a job spec and an optional name."""

    name: str | None = Field(default=None, max_length=200)

    @model_validator(mode="after")
    def _strip_name(self) -> JobSubmit:
        if self.name is not None:
            self.name = self.name.strip() or None
        return self

    def spec(self) -> JobSpec:
        return JobSpec.model_validate(self.model_dump(exclude={"name"}))


def parameter_count(layer_sizes: list[int]) -> int:
    """Weights plus biases of a dense network with these layer sizes."""
    return sum(
        (n_in + 1) * n_out for n_in, n_out in zip(layer_sizes, layer_sizes[1:], strict=False)
    )
