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


@st.composite
def activations_and_a_mask(draw):
    """A style activation (1, h, w, n_C) of its own size, G's activation (1, n_H, n_W, n_C) and a random soft mask
    (1, n_H, n_W, 1) in [0, 1], with some positions exactly 0 (outside) and at least one above 0."""
    n_H, n_W, n_C = draw(st.integers(1, 6)), draw(st.integers(1, 6)), draw(st.integers(1, 5))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    scale = draw(st.sampled_from([0.1, 1.0, 50.0]))
    a_S = rng.exponential(scale, (1, draw(st.integers(1, 6)), draw(st.integers(1, 6)), n_C))
    a_G = rng.exponential(scale, (1, n_H, n_W, n_C))
    mask = rng.random((1, n_H, n_W, 1)) * (rng.random((1, n_H, n_W, 1)) < 0.7)
    mask.flat[rng.integers(mask.size)] = rng.uniform(0.05, 1.0)  # never empty
    return tuple(tf.constant(x, tf.float32) for x in (a_S, a_G, mask))


def reference_guided_layer_cost(a_S, a_G, mask) -> float:
    """Independent reference in float64: Σ_ij (G_S / (h·w) − (A∘m)ᵀ(A∘m) / Σ m²)² / (4 n_C²), from the formula."""
    A_S = a_S.numpy()[0].astype(np.float64)
    masked = a_G.numpy()[0].astype(np.float64) * mask.numpy()[0].astype(np.float64)
    G_S = np.einsum("hwc,hwd->cd", A_S, A_S) / (A_S.shape[0] * A_S.shape[1])
    G_tilde = np.einsum("hwc,hwd->cd", masked, masked) / np.sum(mask.numpy().astype(np.float64) ** 2)
    return float(np.sum((G_S - G_tilde) ** 2) / (4 * a_G.shape[-1] ** 2))


@SETTINGS
@given(activations_and_a_mask())
def test_guided_layer_style_cost_matches_numpy_on_random_activations_and_a_random_mask(inputs):
    a_S, a_G, mask = inputs
    J = float(COSTS["compute_guided_layer_style_cost"](a_S, a_G, mask))
    assert pytest.approx(reference_guided_layer_cost(a_S, a_G, mask), rel=1e-3, abs=1e-9) == J


@SETTINGS
@given(activations_and_a_mask())
def test_a_mask_of_all_ones_gives_exactly_the_unguided_style_cost(inputs):
    a_S, a_G, _ = inputs
    ones = tf.ones((*a_G.shape[:3], 1))
    guided = COSTS["compute_guided_layer_style_cost"](a_S, a_G, ones)
    assert float(guided) == float(COSTS["compute_layer_style_cost"](a_S, a_G)), "exactly, not approximately"
    layers = {"x": a_G}
    style = {"x": a_S}
    J_guided = COSTS["compute_guided_style_cost"](style, layers, [("x", 0.3)], ones.numpy())
    assert float(J_guided) == float(COSTS["compute_style_cost"](style, layers, [("x", 0.3)]))


@SETTINGS
@given(activations_and_a_mask())
def test_a_mask_of_zeros_for_a_style_removes_that_style_s_cost(inputs):
    """Two styles, weighted and added as the notebook's compute_costs adds them: the second's empty mask leaves the
    first's cost alone, and pulls G nowhere (a zero gradient, not a NaN)."""
    a_S1, a_G, mask = inputs
    a_S2 = 3.0 * tf.reverse(a_S1, axis=[2]) + 1.0  # another style of the same channels
    guided, layers = COSTS["compute_guided_style_cost"], [("x", 0.7)]
    zeros = np.zeros((1, *a_G.shape[1:3], 1), np.float32)
    first = guided({"x": a_S1}, {"x": a_G}, layers, mask.numpy())
    assert float(0.5 * first + 0.5 * guided({"x": a_S2}, {"x": a_G}, layers, zeros)) == float(0.5 * first)
    assert float(guided({"x": a_S2}, {"x": a_G}, layers)) > 0, "without its mask the second style does cost"
    with tf.GradientTape() as tape:
        tape.watch(a_G)
        removed = guided({"x": a_S2}, {"x": a_G}, layers, zeros)
    gradient = tape.gradient(removed, a_G)
    assert float(removed) == 0.0
    assert gradient is None or not np.any(gradient.numpy()), "an empty mask must pull G nowhere"


@SETTINGS
@given(activations_and_a_mask())
def test_what_g_holds_outside_the_mask_does_not_count(inputs):
    a_S, a_G, mask = inputs
    elsewhere = tf.where(mask > 0, a_G, 7.0 * tf.ones_like(a_G))
    cost = COSTS["compute_guided_layer_style_cost"]
    assert float(cost(a_S, elsewhere, mask)) == pytest.approx(float(cost(a_S, a_G, mask)), rel=1e-5, abs=1e-12)


def test_the_guided_style_cost_pools_the_mask_to_each_layer():
    """Two layers a pool apart: each layer's cost uses the mask pooled to its grid (TensorFlow's average pool)."""
    rng = np.random.default_rng(7)
    style = {k: tf.constant(rng.random((1, 5, 4, 3)), tf.float32) for k in "xy"}
    generated = {"x": tf.constant(rng.random((1, 6, 8, 3)), tf.float32)}
    generated["y"] = tf.constant(rng.random((1, 3, 4, 3)), tf.float32)
    mask = (rng.random((1, 6, 8, 1)) < 0.5).astype(np.float32)
    mask_y = tf.nn.avg_pool2d(mask, ksize=2, strides=2, padding="VALID")
    expected = 0.4 * reference_guided_layer_cost(style["x"], generated["x"], tf.constant(mask))
    expected += 0.6 * reference_guided_layer_cost(style["y"], generated["y"], mask_y)
    J = COSTS["compute_guided_style_cost"](style, generated, [("x", 0.4), ("y", 0.6)], mask)
    assert float(J) == pytest.approx(expected, rel=1e-4)


def test_every_cost_is_found_in_the_notebook():
    assert set(COSTS) == set(COST_NAMES) and all(callable(cost) for cost in COSTS.values())


def test_a_notebook_without_a_cost_says_which_one(tmp_path):
    import nbformat

    notebook = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("def gram_matrix(A):\n    return A")])
    nbformat.write(notebook, tmp_path / "costs.ipynb")
    with pytest.raises(LookupError, match=r"costs.ipynb: no cell defines compute_content_cost\(\)"):
        cost_cells(tmp_path / "costs.ipynb")
