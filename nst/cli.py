"""The command line: `python nst_utils.py download | stylise`. Its own process never imports TensorFlow.

Every error a user can fix is one line on stderr, `error: …`, with exit status 1; Ctrl-C exits with 130.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from nst import batch, video_cli
from nst.cli_options import add_run_options
from nst.errors import NSTError
from nst.paths import PRETRAINED_DIR, SAMPLE_CONTENT_PATH
from nst.sources import MIRROR_ENV, WEIGHTS_SOURCES

DESCRIPTION = "Neural style transfer: fetch VGG-19 weights, or stylise a photo headless."
# Optional packages that another package imports if they are installed, which this command never needs
SLOW_OPTIONAL_IMPORTS = {
    # jsonschema (under nbformat, under papermill) imports it for its "iri" format check: it compiles about 35 Lark
    # grammars on import, 1.25 s of every run on AVX2 (python-jsonschema/jsonschema#1428). No notebook schema uses
    # that format. JupyterLab's jupyter-events brings the package into the environment.
    "rfc3987_syntax",
}


class _OneLineParser(argparse.ArgumentParser):
    """argparse, but a usage mistake is one line too (argparse prints the usage first), exit status 1."""

    def error(self, message: str):
        print(f"error: {message} (see {self.prog} --help)", file=sys.stderr)
        sys.exit(1)


def main(argv: list[str] | None = None) -> int:
    """Entry point of `python nst_utils.py ...`; returns the process exit code (0 ok, 1 error, 130 Ctrl-C)."""
    parser = _OneLineParser(prog="python nst_utils.py", description=DESCRIPTION)
    commands = parser.add_subparsers(dest="command", required=True, parser_class=_OneLineParser)
    sizes = ", ".join(f"{key} {src.size_bytes / 1e6:.0f} MB" for key, src in WEIGHTS_SOURCES.items() if src.size_bytes)
    download = commands.add_parser(
        "download",
        help="fetch real VGG-19 weights into pretrained-model/",
        description="Download VGG-19 weights, resuming an interrupted download, and verify the published checksum.",
    )
    download.add_argument(
        "key", nargs="?", default="keras", choices=list(WEIGHTS_SOURCES), help=f"which file ({sizes}; default keras)"
    )
    download.add_argument(
        "--dest", type=Path, default=PRETRAINED_DIR, help="folder to save into (default: pretrained-model/)"
    )
    download.add_argument(
        "--url",
        help=f"download from this URL instead (a mirror; keras: default ${MIRROR_ENV}); the checksum is still checked",
    )
    download.set_defaults(run=_download_command)

    stylise_parser = commands.add_parser(
        "stylise",
        help="stylise a photo headless: runs the notebook with papermill into a new output/ folder",
        description="Run the notebook top to bottom on your images; each run gets a new folder under output/.",
    )
    stylise_parser.add_argument(
        "--content", default=str(SAMPLE_CONTENT_PATH), help="the photo to repaint (or a folder, or a glob: see batch)"
    )
    add_run_options(stylise_parser, "the notebook", "-p iterations 40 -p max_side_px 512")
    batch.add_arguments(stylise_parser)
    stylise_parser.set_defaults(run=_stylise_command)

    video_parser = commands.add_parser(
        "video",
        help="stylise a video (or a folder of frames) frame by frame, steadily: runs notebook 02 headless",
        description="Frame-consistent style transfer (Ruder et al., 2016); each run gets a new folder under output/.",
    )
    video_cli.add_arguments(video_parser)
    video_parser.set_defaults(run=video_cli.video_command)

    args = parser.parse_args(argv)
    try:
        return args.run(args)
    except NSTError as err:
        print(f"error: {err}", file=sys.stderr)
        return 130 if type(err).__name__ == "Interrupted" else 1
    except KeyboardInterrupt:
        return 130


def without_slow_optional_imports() -> None:
    """Make SLOW_OPTIONAL_IMPORTS fail to import in this process, as if not installed (their importers do without).

    For the command's own process only (nst_utils.py's __main__), never on import of a module."""
    for name in SLOW_OPTIONAL_IMPORTS:
        sys.modules.setdefault(name, None)  # None in sys.modules: `import name` raises ImportError


def _stylise_command(args: argparse.Namespace) -> int:
    """`stylise`: the weights files its runs would read are checked first, in one line each (a batch makes its folder
    before its runs start); then nst.batch runs the image, the folder, the sweep or the Dask batch."""
    from nst.grid import parse_sweep
    from nst.settings import parse_setting
    from nst.weights import check_weights

    swept = [parse_sweep(text) for text in args.sweep if text.partition("=")[0].strip() == "weights"]
    given = [parse_setting(name, text) for name, text in args.parameter if name == "weights"][-1:]
    given = given or ([] if swept else [None])
    for weights in dict.fromkeys([*given, *(value for sweep in swept for value in sweep.values)]):
        check_weights(weights)
    return batch.stylise_command(args)


def _download_command(args: argparse.Namespace) -> int:
    """`download [key] [--dest DIR] [--url URL]`: fetch and verify, then say what happens next."""
    from nst.download import download_weights

    path = download_weights(args.key, args.dest, args.url)
    print(f"VGG-19 weights ready: {path}")
    if path.parent.resolve() == PRETRAINED_DIR.resolve():
        print("Next: load_vgg_model() will now use them.")
    else:
        print(f"Next: load_vgg_model() looks only in {PRETRAINED_DIR}: move the file there, keeping its name.")
    return 0
