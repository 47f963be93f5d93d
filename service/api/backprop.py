"""``POST /backprop/trace`` and ``POST /backprop/gradient-check`` (``service.backprop``)."""

from __future__ import annotations

from flask import Response

from service import backprop
from service.api import plumbing
from service.api.openapi import over_a_limit, problems
from service.api.plumbing import api_blueprint, respond
from service.schemas.backprop import (
    GradientCheckRequest,
    GradientCheckResponse,
    TraceRequest,
    TraceResponse,
)

bp = api_blueprint("backprop", __name__, "/backprop", tag="backprop")

_LIMIT_413 = over_a_limit(
    "trace_examples, trace_parameters, gradcheck_examples, gradcheck_parameters"
)


@bp.post(
    "/trace",
    summary="One backprop pass in Ng's notation: a, z, δ, Δ and D per layer",
    description="Small problems only (limits trace_examples and trace_parameters). Δ, D, "
    "D_data and D_reg are in Θ layout: rows = units of layer l+1, column 0 = bias. "
    "`per_example: true` adds each example's δ and its contribution δ^(l+1) a^(l)ᵀ, "
    "whose sum over the examples is Δ.",
    responses={200: TraceResponse, **problems(400), **_LIMIT_413},
)
def post_trace(body: TraceRequest) -> Response:
    return respond(backprop.trace(body, plumbing.settings().limits))


@bp.post(
    "/gradient-check",
    summary="Backprop's gradient against centered differences",
    description="Relative difference ‖num − ana‖ / ‖num + ana‖ overall and per layer, the "
    "worst parameter (layer, Θ indices, numerical vs analytic) and `passed` against the "
    "threshold. Small problems only (limits gradcheck_examples and gradcheck_parameters).",
    responses={200: GradientCheckResponse, **problems(400), **_LIMIT_413},
)
def post_gradient_check(body: GradientCheckRequest) -> Response:
    return respond(backprop.check(body, plumbing.settings().limits))
