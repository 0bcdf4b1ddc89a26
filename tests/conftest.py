"""Shared test settings: small, quiet notebook runs whose outputs go to a temporary folder, not output/."""

import os
import tempfile

from ci_sizes import CI_ENVIRONMENT


def pytest_configure(config):
    """Shrink notebook runs for CI (through the notebook's parameters cell); a variable already set wins."""
    for name, value in CI_ENVIRONMENT.items():
        os.environ.setdefault(name, value)
    os.environ.setdefault("NST_OUTPUT_DIR", tempfile.mkdtemp(prefix="nst-test-output-"))
