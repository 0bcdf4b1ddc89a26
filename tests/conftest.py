"""Shared test settings: small, quiet notebook runs whose outputs go to a temporary folder, not output/."""

import os
import tempfile


def pytest_configure(config):
    """Shrink notebook runs for CI (size and iterations only, through the notebook's parameters cell)."""
    os.environ.setdefault("NST_MAX_SIDE_PX", "64")
    os.environ.setdefault("NST_ITERATIONS", "6")
    os.environ.setdefault("NST_OUTPUT_DIR", tempfile.mkdtemp(prefix="nst-test-output-"))
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
