"""nst.style_targets: the style's activations kept as small stand-ins with the same Gram per pixel, so that the
notebook's own style costs (plain and guided) give the same values from them."""

from __future__ import annotations

import numpy as np
import pytest
from notebook_costs import notebook_costs

from nst.style_targets import gram_stand_in, style_stand_ins


def gram64(unrolled):
    """The notebook's gram_matrix, A·Aᵀ of an unrolled activation (n_C, n_H·n_W), in float64: exact to compare."""
    a = np.asarray(unrolled, np.float64)
    return a @ a.T


def gram_per_pixel(activation):
    rows = np.asarray(activation, np.float64).reshape(-1, np.shape(activation)[-1])
    return rows.T @ rows / rows.shape[0]


def relu_like(rng, shape, dead_channels=()):
    """Non-negative activations, some channels all zero (as ReLU leaves them): a Gram with zero eigenvalues."""
    a = np.maximum(rng.normal(size=shape), 0.0).astype(np.float32)
    a[..., list(dead_channels)] = 0.0
    return a


@pytest.mark.parametrize(
    ("shape", "dead"),
    [((1, 7, 9, 4), ()), ((1, 40, 3, 16), (0, 5)), ((1, 1, 17, 8), (7,)), ((1, 5, 5, 24), tuple(range(20)))],
)
def test_the_stand_in_has_the_gram_per_pixel_of_the_activation(shape, dead):
    a = relu_like(np.random.default_rng(0), shape, dead)
    stand_in = gram_stand_in(a, gram64)
    n_c = shape[-1]
    assert stand_in.dtype == np.float32 and stand_in.shape == (1, 1, n_c, n_c)
    expected = gram_per_pixel(a)
    np.testing.assert_allclose(gram_per_pixel(stand_in), expected, rtol=1e-5, atol=1e-6 * expected.max())


def test_the_gram_is_the_one_passed_in():
    a = relu_like(np.random.default_rng(1), (1, 6, 6, 3))
    stand_in = gram_stand_in(a, lambda unrolled: 4.0 * gram64(unrolled))  # a gram_matrix 4 times too large
    np.testing.assert_allclose(gram_per_pixel(stand_in), 4.0 * gram_per_pixel(a), rtol=1e-5)


@pytest.mark.parametrize("shape", [(1, 2, 3, 8), (1, 1, 1, 3), (1, 4, 4, 16)])
def test_an_activation_with_no_more_pixels_than_channels_is_its_own_stand_in(shape):
    a = np.random.default_rng(1).random(shape).astype(np.float64)
    stand_in = gram_stand_in(a, gram64)
    assert stand_in.dtype == np.float32 and stand_in.shape == shape
    np.testing.assert_array_equal(stand_in, a.astype(np.float32))


@pytest.mark.parametrize("shape", [(2, 4, 4, 3), (4, 4, 3), (1, 0, 4, 3), (1, 4, 4, 0)])
def test_what_is_not_one_activation_is_refused(shape):
    with pytest.raises(ValueError, match=r"\(1, n_H, n_W, n_C\)"):
        gram_stand_in(np.zeros(shape, np.float32), gram64)


def test_a_tensorflow_tensor_is_accepted():
    import tensorflow as tf

    a = relu_like(np.random.default_rng(3), (1, 6, 6, 5))
    np.testing.assert_array_equal(gram_stand_in(tf.constant(a), gram64), gram_stand_in(a, gram64))


def test_style_stand_ins_keep_the_style_layers_alone():
    rng = np.random.default_rng(4)
    activations = {
        "x": relu_like(rng, (1, 8, 8, 3)),
        "y": relu_like(rng, (1, 4, 4, 5)),
        "content": rng.random((1, 4, 4, 5)),
    }
    stand_ins = style_stand_ins(activations, [("x", 0.3), ("y", 0.7)], gram64)
    assert list(stand_ins) == ["x", "y"]
    assert stand_ins["x"].shape == (1, 1, 3, 3) and stand_ins["y"].shape == (1, 1, 5, 5)


def test_the_notebook_style_costs_are_the_same_from_the_stand_ins():
    """The notebook's compute_style_cost and its guided version, on VGG-19's own (random-feature) activations of a
    photo-sized image at two sizes, one of them odd: the same cost from the stand-ins (made with the notebook's
    gram_matrix) as from the activations."""
    import tensorflow as tf

    from nst.model import load_vgg_model
    from nst.settings import DEFAULT_STYLE_LAYERS

    costs = notebook_costs()
    layers = list(DEFAULT_STYLE_LAYERS)
    vgg = load_vgg_model("random", output_layers=["conv4_2", *(name for name, _ in layers)], precision="fp32")
    rng = np.random.default_rng(5)
    for height_px, width_px in [(96, 128), (75, 101)]:
        style, generated = (tf.constant(rng.random((1, height_px, width_px, 3)), tf.float32) for _ in range(2))
        a_S, a_G = vgg(style), vgg(generated)
        stand_ins = style_stand_ins(a_S, layers, costs["gram_matrix"])
        assert sum(v.size for v in stand_ins.values()) < sum(int(tf.size(a_S[name])) for name, _ in layers)
        expected = float(costs["compute_style_cost"](a_S, a_G, layers))
        got = float(costs["compute_style_cost"](stand_ins, a_G, layers))
        assert got == pytest.approx(expected, rel=1e-5)
        mask = np.zeros((1, height_px, width_px, 1), np.float32)
        mask[:, :, : width_px // 3] = 1.0  # the left third
        guided = costs["compute_guided_style_cost"]
        assert float(guided(stand_ins, a_G, layers, mask)) == pytest.approx(float(guided(a_S, a_G, layers, mask)), 1e-5)


@pytest.mark.parametrize("block_px", [1, 7, 63, 64, 1 << 18])
def test_the_gram_summed_over_blocks_of_pixels_is_the_whole_gram(block_px):
    a = relu_like(np.random.default_rng(4), (1, 8, 8, 6), dead_channels=(2,))
    sizes = []

    def gram_recording(unrolled):
        sizes.append(np.shape(unrolled))
        return gram64(unrolled)

    stand_in = gram_stand_in(a, gram_recording, block_px=block_px)
    expected = gram_per_pixel(a)
    np.testing.assert_allclose(gram_per_pixel(stand_in), expected, rtol=1e-5, atol=1e-6 * expected.max())
    assert all(n_c == 6 and 1 <= n_px <= block_px for n_c, n_px in sizes), sizes
    assert sum(n_px for _, n_px in sizes) == 64, "every pixel counted once"
