"""`stylise` on one image, a folder or a glob, and sweeps of settings; in-process or on a Dask cluster.

No TensorFlow here: each run is the notebook executed headless (nst.headless).
"""

from __future__ import annotations

import argparse


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The stylise command's options beyond --content, --style, -p and --output-root."""


def stylise_command(args: argparse.Namespace) -> int:
    """`stylise [--content PATH] [--style PATH] [-p NAME VALUE]...`: run the notebook headless, say where it wrote."""
    from nst.headless import stylise
    from nst.settings import parse_setting

    parameters = {name: parse_setting(name, value) for name, value in args.parameter}
    run_dir = stylise(args.content, args.style, parameters, output_root=args.output_root)
    print(f"Done. Final image: {run_dir / 'final.png'}")
    print(f"      Executed notebook: {run_dir / 'notebook.ipynb'}; snapshots and metrics.csv are beside it.")
    return 0
