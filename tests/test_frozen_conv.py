"""The frozen conv + ReLU layer: TensorFlow's own answers, forward and backward, with less kept for the backward."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from nst.frozen_conv import FrozenConv2DReLU, adjoint_kernel

RNG = np.random.default_rng(7)


def random_weights(c_in: int, c_out: int):
    return RNG.normal(0, 0.3, (3, 3, c_in, c_out)).astype(np.float32), RNG.normal(0, 0.1, c_out).astype(np.float32)


def keras_conv(kernel, bias, dtype="float32"):
    """The plain Keras layer the frozen one replaces, whose gradient TensorFlow derives itself."""
    conv = keras.layers.Conv2D(kernel.shape[-1], 3, padding="same", activation="relu", dtype=dtype)
    conv.build((None, None, None, kernel.shape[2]))
    conv.set_weights([kernel, bias])
    return conv


def test_adjoint_kernel_is_the_adjoint_of_same_convolution():
    kernel, _ = random_weights(4, 6)
    x = tf.constant(RNG.normal(size=(1, 7, 9, 4)), tf.float32)
    z = tf.constant(RNG.normal(size=(1, 7, 9, 6)), tf.float32)
    forward = float(tf.reduce_sum(tf.nn.conv2d(x, kernel, 1, "SAME") * z))
    backward = float(tf.reduce_sum(x * tf.nn.conv2d(z, adjoint_kernel(kernel), 1, "SAME")))
    assert adjoint_kernel(kernel).shape == (3, 3, 6, 4)
    np.testing.assert_allclose(forward, backward, rtol=1e-5)


@pytest.mark.parametrize("keep_output", [True, False])
def test_forward_and_image_gradient_equal_tensorflows_own(keep_output):
    """Two layers and an average pool, as in VGG, against Keras Conv2D with TensorFlow's derived gradient."""
    (k1, b1), (k2, b2) = random_weights(3, 5), random_weights(5, 4)
    ours = [FrozenConv2DReLU(k1, b1, keep_output=keep_output), FrozenConv2DReLU(k2, b2, keep_output=keep_output)]
    theirs = [keras_conv(k1, b1), keras_conv(k2, b2)]
    pool = keras.layers.AveragePooling2D(2, 2)
    image = tf.constant(RNG.random((1, 10, 14, 3)), tf.float32)
    upstream = tf.constant(RNG.normal(size=(1, 5, 7, 4)), tf.float32)

    @tf.function
    def value_and_gradient(layers, x):
        with tf.GradientTape() as tape:
            tape.watch(x)
            y = pool(layers[1](layers[0](x)))
            cost = tf.reduce_sum(y * upstream) + tf.reduce_sum(tf.square(layers[0](x)))  # a cost on a hidden layer too
        return y, tape.gradient(cost, x)

    y_ours, grad_ours = value_and_gradient(ours, image)
    y_theirs, grad_theirs = value_and_gradient(theirs, image)
    np.testing.assert_allclose(y_ours.numpy(), y_theirs.numpy(), rtol=1e-5, atol=1e-6)
    scale = np.abs(grad_theirs.numpy()).max()
    assert scale > 0
    np.testing.assert_allclose(grad_ours.numpy(), grad_theirs.numpy(), atol=1e-5 * scale)


def test_the_layer_is_frozen_and_asks_for_no_weight_gradient():
    kernel, bias = random_weights(3, 2)
    layer = FrozenConv2DReLU(kernel, bias)
    x = tf.constant(RNG.random((1, 6, 6, 3)), tf.float32)
    with tf.GradientTape() as tape:
        tape.watch([x, layer.kernel.value])  # watched: TensorFlow's own gradient would give the kernel one
        cost = tf.reduce_sum(layer(x))
    assert layer.trainable_weights == [] and not layer.trainable
    assert tape.gradient(cost, layer.kernel.value) is None, "a weight gradient was computed"
    np.testing.assert_array_equal(layer.kernel.numpy(), kernel)


def test_bf16_policy_computes_in_bfloat16_close_to_fp32():
    kernel, bias = random_weights(3, 8)
    x = tf.constant(RNG.random((1, 12, 12, 3)), tf.float32)
    results = {}
    for dtype in ("float32", "mixed_bfloat16"):
        layer = FrozenConv2DReLU(kernel, bias, keep_output=False, dtype=dtype)
        with tf.GradientTape() as tape:
            tape.watch(x)
            y = layer(x)
            cost = tf.reduce_sum(tf.cast(y, tf.float32) ** 2)
        results[dtype] = (y, tape.gradient(cost, x))
    y_bf16, grad_bf16 = results["mixed_bfloat16"]
    y_fp32, grad_fp32 = results["float32"]
    assert y_bf16.dtype == tf.bfloat16 and grad_bf16.dtype == tf.float32
    assert not np.array_equal(tf.cast(y_bf16, tf.float32).numpy(), y_fp32.numpy())
    relative = np.linalg.norm(grad_bf16 - grad_fp32) / np.linalg.norm(grad_fp32)
    assert relative < 0.03, f"bf16 gradient differs from fp32 by {relative:.2%}"


def test_a_kernel_that_is_not_3x3_is_refused():
    with pytest.raises(ValueError, match=r"\(3, 3, C_in, C_out\)"):
        FrozenConv2DReLU(np.zeros((5, 5, 3, 4), np.float32), np.zeros(4, np.float32))
