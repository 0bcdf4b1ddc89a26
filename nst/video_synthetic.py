"""A synthetic clip whose true motion is known: a textured square sliding across a colour gradient. No TensorFlow.

The tests check the flow, the warp and the consistency mask on it; the benchmark stylises it
(`python -m nst.video_synthetic DIR` writes it as a folder of frames).
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np


def moving_square_frames(
    n_frames: int = 12,
    height_px: int = 96,
    width_px: int = 128,
    square_px: int = 32,
    step_px: int = 4,
    seed: int = 0,
) -> list[np.ndarray]:
    """`n_frames` (H, W, 3) float32 frames in [0, 1]: a random-texture square moving `step_px` right per frame.

    The background is a static gradient (red across, green down); the square starts at (height_px / 3, width_px / 5).
    """
    rows, cols = np.mgrid[0:height_px, 0:width_px].astype(np.float32)
    ramp = 0.5 * cols / width_px + 0.5 * rows / height_px
    background = np.stack([ramp, 0.8 * ramp + 0.1, 1.0 - ramp], axis=2)
    texture = np.random.default_rng(seed).random((square_px, square_px, 3)).astype(np.float32)
    texture = np.clip((_blur(texture) - 0.5) * 3.0 + 0.5, 0.0, 1.0)  # a few px of structure, full contrast
    top_px, left_px = square_pos_px(0, height_px, width_px, step_px)
    frames = []
    for index in range(n_frames):
        frame = background.copy()
        left = left_px + index * step_px
        frame[top_px : top_px + square_px, left : left + square_px] = texture[:, : max(0, width_px - left)]
        frames.append(frame)
    return frames


def square_pos_px(index: int, height_px: int, width_px: int, step_px: int) -> tuple[int, int]:
    """(top_px, left_px) of the square in frame `index`."""
    return height_px // 3, width_px // 5 + index * step_px


def _blur(image: np.ndarray) -> np.ndarray:
    """A 5×5 box blur, edges replicated: turns pixel noise into blobs a flow method can follow."""
    padded = np.pad(image, ((2, 2), (2, 2), (0, 0)), mode="edge")
    height_px, width_px = image.shape[:2]
    return sum(padded[i : i + height_px, j : j + width_px] for i in range(5) for j in range(5)) / 25.0


def main(folder: str) -> None:
    from nst.images import save_image

    for index, frame in enumerate(moving_square_frames()):
        save_image(Path(folder) / f"frame_{index:04d}.png", frame)
    print(f"wrote 12 frames to {folder}")


if __name__ == "__main__":
    main(sys.argv[1])
