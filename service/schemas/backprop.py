"""Request and response bodies of ``POST /backprop/trace`` and ``POST /backprop/gradient-check``.

The network spec, the weight layouts and the problem body are the API's own
(``service.schemas.spec``, ``service.problems``); only what is particular to backprop is here.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field

from service.schemas.names import Task
from service.schemas.spec import Finite, Label, Matrix, NetworkSpec, Strict, ThetaWeights, WbWeights

Vector = list[Finite]
Row = Annotated[list[Finite], Field(min_length=1)]


class _BackpropRequest(Strict):
    network: NetworkSpec = Field(
        description="Hidden layers, output activation and loss; input and output sizes come "
        "from X and y. Weights may sit in network.init or in the top-level weights field."
    )
    weights: Annotated[ThetaWeights | WbWeights, Field(discriminator="format")] | None = Field(
        default=None,
        description="Ng's Θ per layer (shape (s_{l+1}, s_l + 1), bias in column 0) or W/b. "
        "Omitted: drawn from network.init with the seed, and returned in the response.",
    )
    seed: int = Field(default=0, ge=0, le=2**32 - 1, description="Seed of the drawn weights.")
    X: list[Row] = Field(min_length=1, description="Inputs, shape (m, s_1).")
    y: list[Label] | list[Row] = Field(
        min_length=1,
        description="Targets: a matrix (m, K) used as Y exactly; or a vector of m class labels "
        "(one-hot over classes); or, for regression, a vector of m reals (K = 1).",
    )
    task: Task | None = Field(
        default=None,
        description="How a vector y is read. Default: regression for mse, classification "
        "otherwise.",
    )
    classes: list[Label] | None = Field(
        default=None,
        min_length=1,
        description="Class order of the one-hot columns; default: the sorted distinct labels.",
    )
    l2: float = Field(default=0.0, ge=0.0, le=1e6, allow_inf_nan=False, description="λ.")


class TraceRequest(_BackpropRequest):
    per_example: bool = Field(
        default=False, description="Add each example's δ and its contribution δ^(l+1) a^(l)ᵀ."
    )


class GradientCheckRequest(_BackpropRequest):
    epsilon: float = Field(
        default=1e-4,
        ge=1e-10,  # below it, θ ± ε rounds to θ for weights of order one: no difference left
        le=1.0,
        allow_inf_nan=False,
        description="Centered-difference ε (at least 1e-10).",
    )
    threshold: float = Field(
        default=1e-7, gt=0.0, le=1.0, allow_inf_nan=False, description="passed below this."
    )
    include_gradients: bool = Field(
        default=False, description="Also return the numerical and analytic gradients (Θ layout)."
    )


# --- responses -------------------------------------------------------------------------


class _Out(BaseModel):
    model_config = ConfigDict(extra="forbid")


class WbOut(_Out):
    W: Matrix
    b: Vector


class WeightsOut(_Out):
    source: Literal["request", "init"] = Field(
        description="'request' when the caller gave the weights, 'init' when drawn."
    )
    init: str | None = Field(default=None, description="The scheme, when drawn.")
    seed: int | None = Field(default=None, description="The seed, when drawn.")
    theta: list[Matrix] = Field(description="Ng's layout: Θ^(l) (s_{l+1}, s_l + 1).")
    wb: list[WbOut] = Field(description="W^(l) (s_l, s_{l+1}) and b^(l) (s_{l+1},).")


class TargetsOut(_Out):
    Y: Matrix = Field(description="The targets the cost sees, shape (m, K).")
    classes: list[Label] | None = Field(
        default=None, description="Column k of Y is classes[k] (classification)."
    )


class NotationEntry(_Out):
    shape: str
    meaning: str


class TraceLayer(_Out):
    l: int = Field(description="Ng's layer number: 1 = input, L = output.")  # noqa: E741
    units: int = Field(description="s_l, not counting the bias unit.")
    activation: str | None = None
    z: Matrix | None = None
    a: Matrix
    bias_unit: bool = Field(description="Column 0 of a is the bias unit 1.")
    delta: Matrix | None = None
    Theta: Matrix | None = None
    Delta: Matrix | None = None
    D_data: Matrix | None = None
    D_reg: Matrix | None = None
    D: Matrix | None = None


class ExampleLayer(_Out):
    l: int  # noqa: E741
    a: Vector
    z: Vector | None = None
    delta: Vector | None = None
    contribution: Matrix | None = Field(default=None, description="δ^(l+1)_t a^(l)_tᵀ.")


class TraceExample(_Out):
    t: int = Field(description="1-based example number, as in Ng's for t = 1:m.")
    x: Vector
    y: Vector
    layers: list[ExampleLayer]


class CostOut(_Out):
    data: float
    regularization: float
    total: float


class DeltaNorm(_Out):
    l: int = Field(description="Ng's layer number, 2..L (the output last).")  # noqa: E741
    units: int
    activation: str
    delta_norm: float | None = Field(description="‖δ^(l)‖ over all examples and units.")
    delta_rms: float | None = Field(description="‖δ^(l)‖ / √(m·s_l).")
    delta_ratio: float | None = Field(description="delta_rms over the output layer's.")
    D_norm: float | None = Field(description="‖D^(l-1)‖, the gradient of the weights into l.")


class DeltaNorms(_Out):
    m: int
    layers: list[DeltaNorm]


class TraceResponse(_Out):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    m: int
    lambda_: float = Field(alias="lambda")
    layer_sizes: list[int]
    activations: list[str]
    loss: str
    output_delta: str
    layers: list[TraceLayer]
    cost: CostOut
    notation: dict[str, NotationEntry]
    examples: list[TraceExample] | None = None
    delta_norms: DeltaNorms = Field(
        description="How δ shrinks (or grows) layer by layer: its norms, output layer last."
    )
    weights: WeightsOut
    targets: TargetsOut


class LayerDifference(_Out):
    layer: int
    relative_difference: float | None = Field(description="null when not finite.")


class WorstOut(_Out):
    layer: int = Field(description="Ng's l: Θ^(l) maps layer l to l+1.")
    index: list[int] = Field(description="(row, column) in Θ^(l); column 0 is the bias.")
    is_bias: bool
    numerical: float
    analytic: float
    abs_diff: float


class GradientCheckResponse(_Out):
    relative_difference: float | None = Field(
        description="‖num − ana‖ / ‖num + ana‖ over every parameter; null when not finite."
    )
    passed: bool
    threshold: float
    epsilon: float
    l2: float
    n_parameters: int
    n_checked: int = Field(description="Parameters perturbed (all of them here).")
    n_examples: int
    per_layer: list[LayerDifference]
    worst: WorstOut
    numerical: list[Matrix] | None = None
    analytic: list[Matrix] | None = None
    weights: WeightsOut
    targets: TargetsOut
