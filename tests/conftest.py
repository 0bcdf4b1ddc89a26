"""Shared test settings and fixtures: small, quiet notebook runs (outputs in a temp folder), tiny VGG-19 weights."""

import os
import tempfile

import pytest
import synthetic_weights as sw
from ci_sizes import CI_ENVIRONMENT


def pytest_configure(config):
    """Shrink notebook runs for CI (through the notebook's parameters cell); a variable already set wins."""
    for name, value in CI_ENVIRONMENT.items():
        os.environ.setdefault(name, value)
    os.environ.setdefault("NST_OUTPUT_DIR", tempfile.mkdtemp(prefix="nst-test-output-"))


@pytest.fixture(scope="module")
def weights():
    """Tiny VGG-19 weights (4, 8, 16, 32, 32 channels), RGB order."""
    return sw.make_weights(seed=0, widths_divisor=16)


@pytest.fixture(scope="module")
def files(tmp_path_factory, weights):
    """The same tiny weights as current .mat, old .mat and Keras .h5, under names the checksum check skips."""
    return sw.write_all_formats(tmp_path_factory.mktemp("weights"), weights)
