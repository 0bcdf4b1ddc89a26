"""nst.settings.normalise_style_weights: several style images, each with a weight, the weights summing to 1."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

from nst.errors import NSTError, SettingsError
from nst.settings import normalise_style_weights


@pytest.mark.parametrize(
    ("style_images", "expected"),
    [
        ("a.jpg", [("a.jpg", 1.0)]),
        (Path("a.jpg"), [("a.jpg", 1.0)]),
        (("a.jpg", 3), [("a.jpg", 1.0)]),
        (["a.jpg", "b.jpg"], [("a.jpg", 0.5), ("b.jpg", 0.5)]),
        (("a.jpg", "b.jpg"), [("a.jpg", 0.5), ("b.jpg", 0.5)]),  # a tuple of two paths, not a (path, weight) pair
        ([("a.jpg", 3), ("b.jpg", 1.0)], [("a.jpg", 0.75), ("b.jpg", 0.25)]),
        ([["a.jpg", 3], ["b.jpg", 1.0]], [("a.jpg", 0.75), ("b.jpg", 0.25)]),  # lists, as params.json gives them
        ([("a.jpg", 1), "b.jpg", ("c.jpg", 0)], [("a.jpg", 0.5), ("b.jpg", 0.5), ("c.jpg", 0.0)]),
        (
            [("a.jpg", np.float32(2.0)), ("b.jpg", 1e308), ("c.jpg", 1e308)],
            [("a.jpg", 0.0), ("b.jpg", 0.5), ("c.jpg", 0.5)],
        ),
    ],
)
def test_style_weights_are_normalised(style_images, expected):
    result = normalise_style_weights(style_images)
    assert [path for path, _ in result] == [path for path, _ in expected]
    np.testing.assert_allclose([weight for _, weight in result], [weight for _, weight in expected], atol=1e-12)
    assert math.isclose(math.fsum(weight for _, weight in result), 1.0)
    assert all(isinstance(path, str) and isinstance(weight, float) for path, weight in result)
    # a tuple of (path, weight) tuples: hashable and frozen, as a field of the frozen Settings
    assert isinstance(result, tuple) and all(isinstance(pair, tuple) and len(pair) == 2 for pair in result)
    hash(result)


def test_normalising_twice_changes_nothing():
    once = normalise_style_weights([("a.jpg", 3), ("b.jpg", 1), "c.jpg"])
    assert normalise_style_weights(once) == once


@pytest.mark.parametrize(
    ("style_images", "phrase"),
    [
        ([], "pass a style image path"),
        ([("a.jpg", -1.0)], "style weight -1.0 for a.jpg"),
        ([("a.jpg", math.nan)], "style weight nan"),
        ([("a.jpg", math.inf), "b.jpg"], "style weight inf"),
        ([("a.jpg", 0), ("b.jpg", 0.0)], "all style weights are 0"),
        (["a.jpg", 0.5], "neither a path nor a"),
        ([("a.jpg", "0.5")], "neither a path nor a"),
        ([("a.jpg", True)], "neither a path nor a"),
        (42, "pass a style image path"),
    ],
)
def test_style_weights_errors_name_the_value_and_the_fix(style_images, phrase):
    with pytest.raises(SettingsError, match=phrase) as error:
        normalise_style_weights(style_images)
    assert "\n" not in str(error.value)
    # a SettingsError is a ValueError (what the old API raised) and an NSTError (what the command line reports)
    assert isinstance(error.value, ValueError) and isinstance(error.value, NSTError)
    assert "style_images=[('style_a.jpg', 0.7)" in str(error.value) or "give at least one style" in str(error.value)
