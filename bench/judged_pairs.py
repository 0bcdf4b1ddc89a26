"""The pictures the benchmark judges: five content photos and two style images, written into a folder.

    python bench/judged_pairs.py FOLDER     # writes the seven images and prints the ten (content, style) pairs

Photos: the repository's raccoon, and four public-domain photos that scikit-image ships inside its wheel (no
download): `chelsea` (a cat's face, fur and whiskers), `astronaut` (Eileen Collins: a face, a flag, a square
picture), `rocket` (a launch pad at dusk: thin gantries on a dark sky) and `coffee` (a cup on a saucer). Styles: the
repository's swirls, and a stained-glass mosaic painted here (flat colours in hard-edged cells with dark leading:
everything the swirls are not), deterministic from its seed. The first three photos chose the default schedule;
the rocket and the coffee came later, to check that choice on pairs it was not tuned on.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
from PIL import Image, ImageFilter

PROJECT_DIR = Path(__file__).resolve().parents[1]
MOSAIC_SIZE_PX = (1024, 768)  # (width, height)
MOSAIC_SEED = 1150  # stained glass: Chartres, about then
MOSAIC_CELLS = 420
# Glass colours (RGB 0-255): deep blue, ruby, emerald, amber, violet, pale yellow
MOSAIC_COLOURS = np.array(
    [(22, 52, 150), (40, 90, 190), (170, 24, 36), (205, 60, 40), (20, 120, 70), (226, 160, 30), (110, 40, 130)],
    dtype=float,
)
LEADING_RGB = (28, 22, 20)
SCIKIT_IMAGE_PHOTOS = ("chelsea", "astronaut", "rocket", "coffee")  # after the repository's raccoon


def stained_glass(width_px: int = MOSAIC_SIZE_PX[0], height_px: int = MOSAIC_SIZE_PX[1], seed: int = MOSAIC_SEED):
    """A stained-glass mosaic (RGB PIL image): Voronoi cells of flat, slightly mottled glass, with dark leading."""
    from scipy.spatial import cKDTree

    rng = np.random.default_rng(seed)
    centres = rng.random((MOSAIC_CELLS, 2)) * (width_px, height_px)
    ys, xs = np.mgrid[0:height_px, 0:width_px]
    points = np.stack([xs.ravel(), ys.ravel()], axis=1)
    distances, nearest = cKDTree(centres).query(points, k=2)
    cell = nearest[:, 0].reshape(height_px, width_px)
    colours = MOSAIC_COLOURS[rng.integers(0, len(MOSAIC_COLOURS), MOSAIC_CELLS)]
    colours *= rng.uniform(0.8, 1.15, (MOSAIC_CELLS, 1))  # each pane a little lighter or darker
    mottle = rng.normal(0.0, 10.0, (height_px // 8 + 1, width_px // 8 + 1))
    mottle = np.kron(mottle, np.ones((8, 8)))[:height_px, :width_px, None]
    rgb = colours[cell] + mottle
    edge = (distances[:, 1] - distances[:, 0]).reshape(height_px, width_px) < 3.0  # within 1.5 px of a border
    rgb[edge] = LEADING_RGB
    picture = Image.fromarray(np.clip(rgb, 0, 255).astype(np.uint8))
    return picture.filter(ImageFilter.GaussianBlur(0.7))


def write_judged_images(folder: str | Path) -> tuple[list[Path], list[Path]]:
    """Write the five photos and two styles into `folder` (PNG, or the repository's own JPEG); (contents, styles)."""
    from skimage import data

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    contents = [PROJECT_DIR / "images" / "content_raccoon.jpg"]
    for name in SCIKIT_IMAGE_PHOTOS:
        path = folder / f"content_{name}.png"
        if not path.exists():
            Image.fromarray(getattr(data, name)()).save(path)
        contents.append(path)
    mosaic = folder / "style_stained_glass.png"
    if not mosaic.exists():
        stained_glass().save(mosaic)
    return contents, [PROJECT_DIR / "images" / "style_swirls.jpg", mosaic]


def judged_pairs(folder: str | Path) -> list[tuple[Path, Path]]:
    """Every (content, style) pair of the judged set, the sample pair first."""
    contents, styles = write_judged_images(folder)
    return [(content, style) for style in styles for content in contents]


if __name__ == "__main__":
    for content, style in judged_pairs(sys.argv[1] if len(sys.argv) > 1 else "judged"):
        print(content, style)
