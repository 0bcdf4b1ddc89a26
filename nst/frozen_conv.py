"""A frozen 3×3 convolution + ReLU whose backward pass keeps only what the gradient of the *image* needs.

Style transfer differentiates the cost with respect to the pixels, never the weights. So the backward pass of a
frozen conv + ReLU needs no copy of the layer's input (that is for the weight gradient) and, of its output, only
where it is positive. TensorFlow's own gradient cannot know that the weights are frozen, and its CPU kernel for the
input gradient (`Conv2DBackpropInput`) was measured to need far more memory than a forward convolution does. This
layer's gradient is a forward convolution of the masked gradient with the kernel flipped in space and transposed in
channels (the adjoint of a stride-1 'same' 3×3 convolution), and it keeps a boolean mask, or the output where the
output is kept anyway. One value-and-gradient at 1920×1080 needs 0.58× the memory and 0.80× the time of TensorFlow's
(docs/benchmarks.md).
"""

from __future__ import annotations

import keras
import numpy as np
import tensorflow as tf


def adjoint_kernel(kernel: np.ndarray) -> np.ndarray:
    """The kernel (3, 3, C_out, C_in) whose 'same' convolution is the adjoint of kernel (3, 3, C_in, C_out)'s."""
    return np.ascontiguousarray(np.transpose(kernel[::-1, ::-1], (0, 1, 3, 2)))


def conv_relu(x, kernel, bias, kernel_adjoint, keep_output: bool):
    """relu(conv(x, kernel) + bias), 'same' padding, stride 1, with a gradient for x alone.

    keep_output: the output is used beside the next layer (a model output), so it stays alive anyway and the
    backward pass reads its sign from it; otherwise only a boolean mask (1 byte a value) is kept.
    """

    @tf.custom_gradient
    def forward(x, kernel, bias, kernel_adjoint):
        y = tf.nn.relu(tf.nn.bias_add(tf.nn.conv2d(x, kernel, 1, "SAME"), bias))
        positive = None if keep_output else tf.greater(y, 0)

        def backward(dy):
            if keep_output:
                masked = tf.raw_ops.ReluGrad(gradients=dy, features=y)
            else:
                masked = tf.where(positive, dy, tf.zeros((), dy.dtype))
            return tf.nn.conv2d(masked, kernel_adjoint, 1, "SAME"), None, None, None

        return y, backward

    return forward(x, kernel, bias, kernel_adjoint)


class FrozenConv2DReLU(keras.layers.Layer):
    """A VGG conv layer with fixed weights: 3×3, 'same', stride 1, ReLU; it differentiates only its input."""

    def __init__(self, kernel: np.ndarray, bias: np.ndarray, keep_output: bool = True, **kwargs):
        super().__init__(trainable=False, **kwargs)
        kernel = np.asarray(kernel, np.float32)
        if kernel.ndim != 4 or kernel.shape[:2] != (3, 3):
            raise ValueError(f"{self.name}: kernel must be (3, 3, C_in, C_out), got {kernel.shape}")
        self.filters = int(kernel.shape[-1])
        self.keep_output = bool(keep_output)
        constant = keras.initializers.Constant
        self.kernel = self.add_weight(shape=kernel.shape, initializer=constant(kernel), trainable=False, name="kernel")
        self.bias = self.add_weight(
            shape=(self.filters,), initializer=constant(np.asarray(bias, np.float32)), trainable=False, name="bias"
        )
        self.kernel_adjoint = self.add_weight(
            shape=kernel.shape[:2] + kernel.shape[2:][::-1],
            initializer=constant(adjoint_kernel(kernel)),
            trainable=False,
            name="kernel_adjoint",
        )
        self.built = True

    def call(self, x):
        dtype = self.compute_dtype
        weights = (tf.cast(w, dtype) for w in (self.kernel, self.bias, self.kernel_adjoint))
        return conv_relu(x, *weights, keep_output=self.keep_output)

    def compute_output_shape(self, input_shape):
        return (*input_shape[:-1], self.filters)
