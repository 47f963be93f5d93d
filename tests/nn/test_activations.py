"""Activations: registry names, Ng's reference values, derivatives and dtype behaviour."""

from __future__ import annotations

import numpy as np
import pytest

from worker.nn import ACTIVATIONS
from worker.nn.activations import HIDDEN_ACTIVATIONS

ELEMENTWISE = sorted(HIDDEN_ACTIVATIONS)


def test_registry_names_are_the_api_vocabulary():
    assert set(ACTIVATIONS) == {"sigmoid", "tanh", "relu", "leaky_relu", "identity", "softmax"}
    assert HIDDEN_ACTIVATIONS == set(ACTIVATIONS) - {"softmax"}


def test_ng_sigmoid_gradient_reference_values():
    # Ng's exercise 4: sigmoidGradient([-1 -0.5 0 0.5 1]).
    z = np.array([[-1.0, -0.5, 0.0, 0.5, 1.0]])
    expected = [0.196612, 0.235004, 0.25, 0.235004, 0.196612]
    np.testing.assert_allclose(ACTIVATIONS["sigmoid"].derivative(z)[0], expected, atol=5e-7)


def test_forward_values_worked_by_hand():
    z = np.array([[-2.0, 0.0, 3.0]])
    np.testing.assert_allclose(ACTIVATIONS["relu"].forward(z), [[0.0, 0.0, 3.0]])
    np.testing.assert_allclose(ACTIVATIONS["leaky_relu"].forward(z), [[-0.02, 0.0, 3.0]])
    np.testing.assert_allclose(ACTIVATIONS["identity"].forward(z), z)
    np.testing.assert_allclose(ACTIVATIONS["sigmoid"].forward(z)[0, 1], 0.5)
    np.testing.assert_allclose(ACTIVATIONS["tanh"].forward(z), np.tanh(z))
    p = ACTIVATIONS["softmax"].forward(np.array([[0.0, np.log(3.0)]]))
    np.testing.assert_allclose(p, [[0.25, 0.75]])


def test_integer_inputs_are_computed_in_float64():
    a = ACTIVATIONS["sigmoid"].forward(np.array([[0, 2]]))
    assert a.dtype == np.float64
    np.testing.assert_allclose(a, [[0.5, 1 / (1 + np.exp(-2.0))]])


def test_forward_does_not_modify_its_input():
    z = np.array([[-1.0, 2.0]])
    for act in ACTIVATIONS.values():
        act.forward(z)
        np.testing.assert_array_equal(z, [[-1.0, 2.0]])


@pytest.mark.parametrize("name", ELEMENTWISE)
def test_derivative_matches_centered_differences(name):
    act = ACTIVATIONS[name]
    # Points away from 0, where relu and leaky_relu have their kink.
    z = np.array([[-2.3, -0.7, -0.05, 0.05, 0.4, 1.9]])
    h = 1e-6
    numeric = (act.forward(z + h) - act.forward(z - h)) / (2 * h)
    np.testing.assert_allclose(act.derivative(z), numeric, rtol=1e-7, atol=1e-9)
    # Given a = g(z), the derivative is computed from a and agrees.
    np.testing.assert_allclose(act.derivative(z, act.forward(z)), act.derivative(z))


@pytest.mark.parametrize("name", ELEMENTWISE)
def test_backward_is_da_times_derivative(name):
    act = ACTIVATIONS[name]
    rng = np.random.default_rng(3)
    z = rng.normal(size=(4, 5))
    da = rng.normal(size=(4, 5))
    np.testing.assert_allclose(act.backward(da, z, act.forward(z)), da * act.derivative(z))


def test_softmax_backward_is_the_jacobian_vector_product():
    rng = np.random.default_rng(4)
    z = rng.normal(size=(3, 4))
    da = rng.normal(size=(3, 4))
    softmax = ACTIVATIONS["softmax"]
    a = softmax.forward(z)
    for row in range(3):
        p = a[row]
        jacobian = np.diag(p) - np.outer(p, p)  # d a_i / d z_j
        np.testing.assert_allclose(
            softmax.backward(da, z, a)[row], jacobian.T @ da[row], rtol=1e-12
        )
    with pytest.raises(TypeError):
        softmax.derivative(z)


def test_softmax_rows_sum_to_one_even_for_huge_inputs():
    p = ACTIVATIONS["softmax"].forward(np.array([[1000.0, 1000.0, -1000.0]]))
    np.testing.assert_allclose(p, [[0.5, 0.5, 0.0]])


def test_sigmoid_saturates_without_warnings():
    # pytest turns warnings into errors; exp overflow must not leak out of forward.
    a = ACTIVATIONS["sigmoid"].forward(np.array([[-1000.0, 1000.0]]))
    np.testing.assert_array_equal(a, [[0.0, 1.0]])


@pytest.mark.parametrize("name", sorted(ACTIVATIONS))
def test_float32_stays_float32(name):
    act = ACTIVATIONS[name]
    z = np.array([[-1.5, 0.25, 2.0]], dtype=np.float32)
    a = act.forward(z)
    assert a.dtype == np.float32
    assert act.backward(np.ones_like(z), z, a).dtype == np.float32
    if act.elementwise:
        assert act.derivative(z, a).dtype == np.float32


@pytest.mark.parametrize("name", sorted(HIDDEN_ACTIVATIONS - {"identity"}))
def test_backward_inplace_leaves_the_derivative_in_scratch(name):
    # The trainer's activation statistics read g'(z) from there (worker.nn.recording).
    act = ACTIVATIONS[name]
    z = np.array([[-2.3, -0.7, -0.05, 0.05, 0.4, 1.9]])
    a = act.forward(z)
    scratch = np.full_like(a, np.nan)
    delta = np.full_like(a, 3.0)
    act.backward_inplace(delta, a, scratch)
    np.testing.assert_allclose(scratch, act.derivative(z))
    np.testing.assert_allclose(delta, 3.0 * act.derivative(z))
