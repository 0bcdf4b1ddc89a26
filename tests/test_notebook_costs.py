"""Property tests of the notebook's costs (taken from the notebook itself by nst.notebook_costs) on random shapes and
values, each against an independent NumPy reference."""

import numpy as np
import pytest
import tensorflow as tf
from hypothesis import given, settings
from hypothesis import strategies as st
from notebook_costs import COSTS as COST_NAMES
from notebook_costs import cost_cells, notebook_costs

COSTS = notebook_costs()
SETTINGS = settings(max_examples=30, deadline=None)


@st.composite
def activation_pairs(draw):
    """Two float32 activations of one random shape (1, n_H, n_W, n_C) with values like ReLU outputs."""
    n_H, n_W, n_C = draw(st.integers(1, 6)), draw(st.integers(1, 6)), draw(st.integers(1, 5))
    seed = draw(st.integers(0, 2**32 - 1))
    rng = np.random.default_rng(seed)
    a, b = (rng.exponential(draw(st.sampled_from([0.1, 1.0, 50.0])), (1, n_H, n_W, n_C)) for _ in range(2))
    return tf.constant(a, tf.float32), tf.constant(b, tf.float32)


def reference_gram(a):
    """Independent reference: Σ over pixels of a_c · a_d, in float64."""
    return np.einsum("hwc,hwd->cd", a[0].numpy().astype(np.float64), a[0].numpy().astype(np.float64))


@SETTINGS
@given(activation_pairs())
def test_content_cost_is_zero_on_itself_symmetric_and_matches_numpy(pair):
    a, b = pair
    _, n_H, n_W, n_C = a.shape
    J = float(COSTS["compute_content_cost"](a, b))
    assert float(COSTS["compute_content_cost"](a, a)) == 0.0
    assert pytest.approx(float(COSTS["compute_content_cost"](b, a)), rel=1e-5) == J
    expected = np.sum((a.numpy().astype(np.float64) - b.numpy()) ** 2) / (4 * n_H * n_W * n_C)
    assert pytest.approx(expected, rel=1e-4, abs=1e-9) == J


@SETTINGS
@given(activation_pairs())
def test_gram_is_symmetric_positive_semidefinite_and_matches_einsum(pair):
    a, _ = pair
    _, n_H, n_W, n_C = a.shape
    unrolled = tf.transpose(tf.reshape(a, (n_H * n_W, n_C)))
    G = COSTS["gram_matrix"](unrolled).numpy().astype(np.float64)
    np.testing.assert_allclose(G, reference_gram(a), rtol=1e-4, atol=1e-6 * np.abs(G).max())
    np.testing.assert_allclose(G, G.T, rtol=1e-6)
    assert np.linalg.eigvalsh(G).min() >= -1e-4 * max(1.0, np.abs(G).max())


@SETTINGS
@given(activation_pairs(), st.floats(0.1, 10.0))
def test_layer_style_cost_matches_einsum_and_scales_with_the_fourth_power(pair, scale):
    a, b = pair
    _, n_H, n_W, n_C = a.shape
    J = float(COSTS["compute_layer_style_cost"](a, b))
    expected = np.sum((reference_gram(a) - reference_gram(b)) ** 2) / (4 * n_C**2 * (n_H * n_W) ** 2)
    assert pytest.approx(expected, rel=1e-3, abs=1e-9) == J
    assert float(COSTS["compute_layer_style_cost"](a, a)) == 0.0
    assert float(COSTS["compute_layer_style_cost"](scale * a, scale * b)) == pytest.approx(scale**4 * J, rel=1e-3)


@SETTINGS
@given(activation_pairs(), st.lists(st.floats(0.0, 5.0), min_size=2, max_size=2))
def test_style_cost_is_linear_in_the_coefficients(pair, coefficients):
    a, b = pair
    layers = {"x": a, "y": b}
    generated = {"x": b, "y": a}
    J_x = float(COSTS["compute_layer_style_cost"](a, b))
    J_y = float(COSTS["compute_layer_style_cost"](b, a))
    J = float(COSTS["compute_style_cost"](layers, generated, list(zip("xy", coefficients, strict=True))))
    assert pytest.approx(coefficients[0] * J_x + coefficients[1] * J_y, rel=1e-4, abs=1e-9) == J


@SETTINGS
@given(st.floats(0, 1e6), st.floats(0, 1e6), st.floats(0, 1e3), st.floats(0, 1e3))
def test_total_cost_is_bilinear(J_content, J_style, alpha, beta):
    total = float(COSTS["total_cost"](J_content, J_style, alpha=alpha, beta=beta))
    assert total == pytest.approx(alpha * J_content + beta * J_style, rel=1e-9, abs=1e-9)


@SETTINGS
@given(activation_pairs(), st.integers(1, 4), st.integers(1, 4))
def test_layer_style_cost_compares_per_pixel_grams_when_sizes_differ(pair, extra_h, extra_w):
    a, _ = pair
    _, n_H, n_W, n_C = a.shape
    rng = np.random.default_rng(n_H * 100 + n_W)
    b = tf.constant(rng.exponential(1.0, (1, n_H + extra_h, n_W + extra_w, n_C)), tf.float32)  # a larger S
    expected = np.sum((reference_gram(b) / b.shape[1] / b.shape[2] - reference_gram(a) / (n_H * n_W)) ** 2)
    assert float(COSTS["compute_layer_style_cost"](b, a)) == pytest.approx(expected / (4 * n_C**2), rel=1e-3, abs=1e-9)


@st.composite
def images(draw):
    """A float32 image batch (1, n_H, n_W, n_C) in [0, 1] of a random shape."""
    n_H, n_W, n_C = draw(st.integers(1, 6)), draw(st.integers(1, 6)), draw(st.sampled_from([1, 3]))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    return tf.constant(rng.random((1, n_H, n_W, n_C)), tf.float32)


@SETTINGS
@given(images(), st.floats(0.0, 1.0), st.floats(0.1, 10.0))
def test_tv_cost_matches_numpy_ignores_an_offset_and_scales_linearly(image, offset, scale):
    pixels = image.numpy().astype(np.float64)
    expected = np.abs(np.diff(pixels, axis=1)).sum() + np.abs(np.diff(pixels, axis=2)).sum()
    tv = COSTS["compute_tv_cost"]
    assert float(tv(image)) == pytest.approx(expected, rel=1e-5, abs=1e-6)
    assert float(tv(image + offset)) == pytest.approx(expected, rel=1e-4, abs=1e-5)
    assert float(tv(scale * image)) == pytest.approx(scale * expected, rel=1e-4, abs=1e-5)
    assert float(tv(tf.fill(image.shape, offset))) == 0.0


def test_every_cost_is_found_in_the_notebook():
    assert set(COSTS) == set(COST_NAMES) and all(callable(cost) for cost in COSTS.values())


def test_a_notebook_without_a_cost_says_which_one(tmp_path):
    import nbformat

    notebook = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("def gram_matrix(A):\n    return A")])
    nbformat.write(notebook, tmp_path / "costs.ipynb")
    with pytest.raises(LookupError, match=r"costs.ipynb: no cell defines compute_content_cost\(\)"):
        cost_cells(tmp_path / "costs.ipynb")
