"""Style targets kept small: for each style layer, an n_C × n_C stand-in with the activation's Gram per pixel.

The notebook's style cost reads the style image's activation a_S (1, n_H, n_W, n_C) only through its Gram matrix per
pixel, A·Aᵀ / (n_H·n_W) with A = a_S unrolled to (n_C, n_H·n_W). Any array with that same Gram per pixel gives the
same cost. Write the Gram per pixel as V·Λ·Vᵀ (it is symmetric and positive semi-definite); then the n_C × n_C matrix
A' = √n_C · Λ^½ · Vᵀ has A'ᵀ·A' / n_C = V·Λ·Vᵀ. Shaped (1, 1, n_C, n_C), it is a stand-in for a_S: one "row" of
n_C positions. At 3840×2160 the style's five default layers hold 122 float32 values a pixel, 4 GB; their stand-ins
hold 2.4 MB, and each step no longer computes the style's Gram over every pixel.

The Gram itself is the notebook's `gram_matrix`, passed in: the costs are written there, and only there. It is
summed over blocks of pixels, in float64: a Gram is a sum over pixels, and a block's unrolled copy (which
gram_matrix needs: n_C rows of pixels) stays small where the whole layer's would not (conv1_1 of a 3840×2880 style
image: 2.8 GB in float32). No TensorFlow here: the activations come in as arrays (a TensorFlow tensor converts),
the stand-ins go out as numpy.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

import numpy as np

BLOCK_PX = 1 << 18  # pixels per block of the Gram's sum: 64 MB of unrolled float32 at 64 channels


def gram_stand_in(activation, gram_matrix: Callable, block_px: int = BLOCK_PX) -> np.ndarray:
    """A float32 array with the same Gram per pixel as `activation` (1, n_H, n_W, n_C), and no more values than it:
    (1, 1, n_C, n_C) when the activation has more than n_C pixels, else the activation itself (as float32).

    gram_matrix: the notebook's, from an unrolled activation (n_C, pixels) to its Gram matrix (n_C, n_C), called on
    blocks of at most `block_px` pixels.
    """
    a = np.asarray(activation)
    if a.ndim != 4 or a.shape[0] != 1 or 0 in a.shape:
        raise ValueError(f"an activation of shape (1, n_H, n_W, n_C) is needed, not {a.shape}")
    _, n_h, n_w, n_c = a.shape
    if n_h * n_w <= n_c:
        return a.astype(np.float32, copy=False)
    pixels = a.reshape(n_h * n_w, n_c)  # one row a pixel; each block is unrolled to (n_C, pixels) as the cost does
    gram = np.zeros((n_c, n_c), np.float64)
    for start in range(0, n_h * n_w, block_px):
        gram += np.asarray(gram_matrix(np.ascontiguousarray(pixels[start : start + block_px].T)), np.float64)
    gram_per_pixel = gram / (n_h * n_w)
    eigenvalues, eigenvectors = np.linalg.eigh(gram_per_pixel)
    root = np.sqrt(np.clip(eigenvalues, 0.0, None))[:, np.newaxis] * eigenvectors.T  # rootᵀ·root = the Gram
    return (np.sqrt(n_c) * root).astype(np.float32)[np.newaxis, np.newaxis]


def style_stand_ins(
    activations: Mapping, style_layers: Sequence[tuple[str, float]], gram_matrix: Callable
) -> dict[str, np.ndarray]:
    """For each (layer name, coefficient) of `style_layers`, the stand-in of that layer's activation (gram_matrix:
    the notebook's); the other layers of `activations` (the content layer) are left out."""
    return {name: gram_stand_in(activations[name], gram_matrix) for name, _ in style_layers}
