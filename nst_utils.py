"""Plumbing for the neural-style-transfer notebook: VGG-19 weights, the model, images, runs and display.

The costs (content, Gram, style, total) are *not* here: they live in the notebook, where they are taught.
Importing this module has no side effects: no downloads, no seeds, no plotting settings.

Command line:
    python nst_utils.py download [keras|matconvnet]   # fetch real VGG-19 weights into pretrained-model/
"""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
import os
import sys
import tempfile
from pathlib import Path

import numpy as np

# ============================================================================ Paths, constants, errors

PROJECT_DIR = Path(__file__).resolve().parent
PRETRAINED_DIR = PROJECT_DIR / "pretrained-model"
IMAGES_DIR = PROJECT_DIR / "images"
OUTPUT_DIR = PROJECT_DIR / "output"

# ImageNet mean pixel, RGB order, 0-255 scale. Only a fallback: the .mat file carries its own.
VGG_MEAN_RGB_255 = (123.68, 116.779, 103.939)

# VGG-19 "E" configuration: (output channels, number of 3x3 convs) per block; each block ends in a 2x2 pool.
VGG19_BLOCKS = ((64, 2), (128, 2), (256, 4), (512, 4), (512, 4))


def vgg19_layer_names() -> tuple[str, ...]:
    """The layer names the model can return, in network order: conv1_1, conv1_2, pool1, ..., conv5_4, pool5."""
    names: list[str] = []
    for block, (_, n_convs) in enumerate(VGG19_BLOCKS, start=1):
        names += [f"conv{block}_{i}" for i in range(1, n_convs + 1)]
        names.append(f"pool{block}")
    return tuple(names)


@dataclasses.dataclass(frozen=True)
class WeightsSource:
    """A published VGG-19 weights file: where it is served and how to recognise a genuine copy."""

    key: str  # name on the command line: "keras" or "matconvnet"
    filename: str  # the exact name the loader looks for in pretrained-model/
    url: str
    md5s: tuple[str, ...]  # md5 of every genuine release; the first is the file served at `url`
    sha256: str | None  # sha256 of the file served at `url`, where published
    size_bytes: int | None  # expected size: a progress hint only, the checksum is the authority


WEIGHTS_SOURCES = {
    "keras": WeightsSource(
        key="keras",
        filename="vgg19_weights_tf_dim_ordering_tf_kernels_notop.h5",
        url="https://storage.googleapis.com/tensorflow/keras-applications/vgg19/"
        "vgg19_weights_tf_dim_ordering_tf_kernels_notop.h5",
        md5s=("253f8cb515780f3b799900260a226db6",),
        sha256=None,
        size_bytes=80_134_624,
    ),
    "matconvnet": WeightsSource(
        key="matconvnet",
        filename="imagenet-vgg-verydeep-19.mat",
        url="https://www.vlfeat.org/matconvnet/models/imagenet-vgg-verydeep-19.mat",
        # current release first, then the old "beta16" release (same network, other struct layout)
        md5s=("106118b7cf60435e6d8e04f6a6dc3657", "8ee3263992981a1d26e73b3ca028a123"),
        sha256="abdb57167f82a2a1fbab1e1c16ad9373411883f262a1a37ee5db2e6fb0044695",
        size_bytes=534_904_783,
    ),
}


class NSTError(Exception):
    """A problem the user can fix; its message is one line that names the file or value and the fix."""


class WeightsFileError(NSTError, ValueError):
    """A weights file that is missing, corrupt, or not VGG-19."""


class DownloadError(NSTError):
    """A weights download that failed or fetched the wrong bytes."""


class ImageFileError(NSTError, ValueError):
    """An image file that cannot be used as content or style."""


# ============================================================================ Weights: download


# ============================================================================ Weights: reading files


# ============================================================================ Model


# ============================================================================ Images


# ============================================================================ Runs: optimisation, saving, display


# ============================================================================ Command line


def main(argv: list[str] | None = None) -> int:
    """Entry point of `python nst_utils.py ...`; returns the process exit code."""
    parser = argparse.ArgumentParser(prog="python nst_utils.py", description=__doc__.splitlines()[0])
    parser.add_subparsers(dest="command", required=True)
    args = parser.parse_args(argv)
    del args
    return 0


if __name__ == "__main__":
    sys.exit(main())
