"""The options every run command shares: --style, -p NAME VALUE and --output-root (no TensorFlow)."""

from __future__ import annotations

import argparse
from pathlib import Path

from nst.paths import OUTPUT_DIR, SAMPLE_STYLE_PATH


def add_run_options(parser: argparse.ArgumentParser, notebook: str, example: str) -> None:
    """Add --style, -p/--parameter (the parameters cell of `notebook`, e.g. `example`) and --output-root."""
    parser.add_argument("--style", type=Path, default=SAMPLE_STYLE_PATH, help="the image whose style to use")
    parser.add_argument(
        "-p",
        "--parameter",
        nargs=2,
        action="append",
        default=[],
        metavar=("NAME", "VALUE"),
        help=f"set a parameter of {notebook}'s parameters cell, e.g. {example}",
    )
    parser.add_argument("--output-root", type=Path, default=OUTPUT_DIR, help="where run folders go")
