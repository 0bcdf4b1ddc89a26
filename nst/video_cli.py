"""`python nst_utils.py video`: notebook 02 executed headless on a clip. No TensorFlow in this process."""

from __future__ import annotations

import argparse

from nst.errors import NSTError


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The video command's options."""


def video_command(args: argparse.Namespace) -> int:
    """Stylise a clip frame by frame."""
    raise NSTError("the video command is not built yet")
