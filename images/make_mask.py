"""Draw images/raccoon_leaves_mask.png: the palm leaves of the sample photo white, the raccoon black (deterministic).

Run from the repository root:  python images/make_mask.py
Needs numpy, SciPy and Pillow (all in requirements.txt). The mask pairs with the sample style for spatial control:
  make run PARAMS="-p style_masks images/raccoon_leaves_mask.png"   (the leaves painted, the raccoon kept)
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
from PIL import Image
from scipy import ndimage

IMAGES_DIR = Path(__file__).resolve().parent
PHOTO_PATH = IMAGES_DIR / "content_raccoon.jpg"
OUTPUT_PATH = IMAGES_DIR / "raccoon_leaves_mask.png"
EXCESS_GREEN = 20  # 2G − R − B above this (0-255 units) is leaf: the fur is about −20, the leaves about 80
SMOOTHING_PX = 12  # Gaussian σ before thresholding: drops leaf blades thinner than about 2σ that cross the fur
EDGE_PX = 2.0  # Gaussian σ of the final soft edge, so the mask's border is not a staircase at small sizes


def make_mask(photo: Image.Image) -> Image.Image:
    """The leaves of `photo` as an 8-bit greyscale mask of its size: white leaves, black raccoon, a soft edge."""
    red, green, blue = np.moveaxis(np.asarray(photo.convert("RGB"), dtype=np.float32), 2, 0)
    leaves = (2 * green - red - blue) > EXCESS_GREEN
    leaves = ndimage.gaussian_filter(leaves.astype(np.float32), SMOOTHING_PX) > 0.5  # smooth outline, no specks
    labels, _ = ndimage.label(~leaves)  # the regions that are not leaf; the largest is the raccoon
    sizes = np.bincount(labels.ravel())
    sizes[0] = 0  # label 0 is the leaves themselves
    raccoon = labels == sizes.argmax()  # shadows between the leaves, smaller regions, count as leaves
    mask01 = ndimage.gaussian_filter((~raccoon).astype(np.float32), EDGE_PX)
    return Image.fromarray(np.rint(mask01 * 255).astype(np.uint8))


def main() -> int:
    """Write OUTPUT_PATH from PHOTO_PATH and print its size and how much of the photo it covers."""
    with Image.open(PHOTO_PATH) as photo:
        mask = make_mask(photo)
    mask.save(OUTPUT_PATH, optimize=True)
    covered = np.asarray(mask, dtype=np.float64).mean() / 255
    print(
        f"wrote {OUTPUT_PATH} ({mask.width}x{mask.height} px, {OUTPUT_PATH.stat().st_size // 1024} KB), "
        f"covering {covered:.0%} of the photo"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
