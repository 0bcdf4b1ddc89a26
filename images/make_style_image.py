"""Paint images/style_swirls.jpg: thousands of brush strokes that follow a swirling flow field (deterministic).

Run from the repository root:  python images/make_style_image.py
Needs only numpy and Pillow. The same seed gives the same picture on the same numpy/Pillow versions.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

WIDTH_PX, HEIGHT_PX = 1024, 768  # size of the saved image
SUPERSAMPLE = 2  # paint at 2x and downscale, which smooths stroke edges
SEED = 1889  # the year of a famous swirling night sky
JPEG_QUALITY = 88
OUTPUT_PATH = Path(__file__).resolve().parent / "style_swirls.jpg"

# Vortices in [0, 1] x [0, 1] canvas units: (x, y, radius, strength); positive strength turns counter-clockwise.
VORTICES = (
    (0.30, 0.32, 0.20, 1.0),
    (0.62, 0.22, 0.13, -0.9),
    (0.82, 0.55, 0.17, 1.1),
    (0.12, 0.72, 0.10, -0.8),
    (0.50, 0.66, 0.12, 0.9),
)

# Colours (RGB 0-255) of the sky from dark to light, and of the glowing vortex centres.
SKY_COLOURS = np.array([(12, 24, 74), (24, 58, 140), (42, 98, 180), (70, 140, 200), (120, 178, 205)], dtype=float)
GLOW_COLOURS = np.array([(250, 232, 120), (246, 196, 58), (232, 140, 40)], dtype=float)
GLOW = (246, 210, 90)  # the cores under the strokes


def flow_direction(x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Unit direction of the flow at canvas points (x, y) in [0, 1]: a wavy drift plus the vortices."""
    dx = np.ones_like(x) * 0.6
    dy = 0.35 * np.sin(2 * np.pi * (1.7 * x + 0.9 * y)) + 0.2 * np.cos(2 * np.pi * 3.1 * x)
    for cx, cy, radius, strength in VORTICES:
        rx, ry = x - cx, y - cy
        falloff = strength * np.exp(-((rx**2 + ry**2) / radius**2)) * 6.0
        dx += -ry / radius * falloff
        dy += rx / radius * falloff
    norm = np.hypot(dx, dy) + 1e-9
    return dx / norm, dy / norm


def base_colour(x: np.ndarray, y: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Paint colour (RGB 0-255) for strokes starting at (x, y): sky bands by height, glowing vortex cores."""
    band = np.clip(0.85 - y * 0.55 + 0.18 * np.sin(2 * np.pi * (2.2 * x + 1.3 * y)), 0, 0.999)
    band = band + rng.normal(0, 0.12, size=x.shape)
    index = np.clip(band * (len(SKY_COLOURS) - 1), 0, len(SKY_COLOURS) - 1.001)
    low = index.astype(int)
    frac = (index - low)[:, None]
    colour = SKY_COLOURS[low] * (1 - frac) + SKY_COLOURS[low + 1] * frac
    glow = np.zeros_like(x)
    for cx, cy, radius, _ in VORTICES:
        glow = np.maximum(glow, np.exp(-(((x - cx) ** 2 + (y - cy) ** 2) / (0.55 * radius) ** 2)))
    glow_index = rng.integers(0, len(GLOW_COLOURS), size=x.shape)
    glow_weight = np.clip(glow * 1.3 + rng.normal(0, 0.1, size=x.shape), 0, 1)[:, None]
    colour = colour * (1 - glow_weight) + GLOW_COLOURS[glow_index] * glow_weight
    return np.clip(colour + rng.normal(0, 10, size=colour.shape), 0, 255)


def paint_layer(
    canvas: ImageDraw.ImageDraw,
    rng: np.random.Generator,
    n_strokes: int,
    width_px: tuple[int, int],
    n_steps: tuple[int, int],
    step_px: float,
) -> None:
    """Draw `n_strokes` strokes that follow the flow field; widths and step lengths in supersampled pixels."""
    w, h = canvas.im.size
    x = rng.uniform(-0.05, 1.05, n_strokes)
    y = rng.uniform(-0.05, 1.05, n_strokes)
    colours = base_colour(x, y, rng)
    steps = rng.integers(n_steps[0], n_steps[1] + 1, n_strokes)
    widths = rng.integers(width_px[0], width_px[1] + 1, n_strokes)
    path = np.empty((n_steps[1] + 1, n_strokes, 2))
    path[0] = np.stack([x * w, y * h], axis=1)
    for step in range(1, n_steps[1] + 1):
        ux, uy = flow_direction(path[step - 1, :, 0] / w, path[step - 1, :, 1] / h)
        path[step] = path[step - 1] + np.stack([ux, uy], axis=1) * step_px
    for i in range(n_strokes):
        points = [tuple(p) for p in path[: steps[i] + 1, i]]
        colour = tuple(int(c) for c in colours[i])
        shade = tuple(int(c * 0.72) for c in colours[i])
        canvas.line(points, fill=shade, width=int(widths[i]) + 2 * SUPERSAMPLE, joint="curve")
        canvas.line(points, fill=colour, width=int(widths[i]), joint="curve")


def make_style_image(seed: int = SEED) -> Image.Image:
    """The finished painting, WIDTH_PX x HEIGHT_PX RGB."""
    rng = np.random.default_rng(seed)
    size = (WIDTH_PX * SUPERSAMPLE, HEIGHT_PX * SUPERSAMPLE)
    image = Image.new("RGB", size, tuple(int(c) for c in SKY_COLOURS[1]))
    canvas = ImageDraw.Draw(image)
    s = SUPERSAMPLE
    for cx, cy, radius, _ in VORTICES:  # underpaint the cores, where strokes curl too tightly to cover the canvas
        r_px = 0.3 * radius * size[1]
        canvas.ellipse((cx * size[0] - r_px, cy * size[1] - r_px, cx * size[0] + r_px, cy * size[1] + r_px), GLOW)
    paint_layer(canvas, rng, 2500, (14 * s, 22 * s), (8, 14), 9.0 * s)  # broad underpainting
    paint_layer(canvas, rng, 9000, (6 * s, 11 * s), (6, 12), 6.0 * s)  # main strokes
    paint_layer(canvas, rng, 6000, (2 * s, 4 * s), (4, 9), 5.0 * s)  # fine highlights
    image = image.filter(ImageFilter.SMOOTH_MORE)
    image = image.resize((WIDTH_PX, HEIGHT_PX), Image.Resampling.LANCZOS)
    canvas_grain = rng.normal(1.0, 0.035, size=(HEIGHT_PX, WIDTH_PX, 1))  # the weave of the canvas
    pixels = np.asarray(image, dtype=float) * canvas_grain
    return Image.fromarray(np.clip(pixels, 0, 255).round().astype(np.uint8))


def main() -> int:
    """Write OUTPUT_PATH and print its size."""
    make_style_image().save(OUTPUT_PATH, quality=JPEG_QUALITY, optimize=True)
    print(f"wrote {OUTPUT_PATH} ({OUTPUT_PATH.stat().st_size // 1024} KB)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
