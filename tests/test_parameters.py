"""Bad settings stop in one line that names the value and the fix, before any long run starts."""

import pytest

import nst_utils

GOOD = dict(
    alpha=10.0,
    beta=40.0,
    content_layer="conv4_2",
    style_layers=[("conv1_1", 0.2), ("conv2_1", 0.2), ("conv3_1", 0.2), ("conv4_1", 0.2), ("conv5_1", 0.2)],
    iterations=200,
    save_every=100,
    learning_rate=0.01,
    max_side_px=400,
)


def test_good_settings_pass_and_style_layers_come_back_as_pairs():
    assert nst_utils.check_parameters(**{**GOOD, "style_layers": [["conv1_1", 1]]}) == [("conv1_1", 1.0)]


@pytest.mark.parametrize(
    ("change", "words"),
    [
        ({"alpha": -1.0}, "alpha=-1.0"),
        ({"beta": float("nan")}, "beta=nan"),
        ({"alpha": 0.0, "beta": 0.0}, "nothing to optimise"),
        ({"content_layer": "conv4_5"}, "conv4_5' is not a VGG-19 layer; choose one of conv1_1"),
        ({"style_layers": [("conv1_1", 0.5), ("relu2_1", 0.5)]}, "relu2_1 is not a VGG-19 layer"),
        ({"style_layers": [("conv1_1", 0.0), ("conv2_1", 0.0)]}, "at least one positive"),
        ({"style_layers": [("conv1_1", -0.2)]}, "coefficients must be ≥ 0"),
        ({"style_layers": ["conv1_1"]}, "(layer_name, coefficient) pairs"),
        ({"iterations": -5}, "iterations=-5"),
        ({"save_every": 0}, "save_every=0"),
        ({"learning_rate": 0}, "learning_rate=0"),
        ({"max_side_px": 8}, "max_side_px=8"),
    ],
)
def test_each_bad_setting_gets_one_line_naming_it(change, words):
    with pytest.raises(ValueError) as error:
        nst_utils.check_parameters(**{**GOOD, **change})
    assert words in str(error.value) and "\n" not in str(error.value)


def test_zero_iterations_is_allowed():
    nst_utils.check_parameters(**{**GOOD, "iterations": 0})


@pytest.mark.parametrize(
    ("change", "words"),
    [
        ({"init": "noisy"}, "init='noisy' is unknown; choose one of noisy_content, content, style, noise"),
        ({"preserve_colours": "yes"}, "preserve_colours='yes'"),
        ({"tv_weight": -1.0}, "tv_weight=-1.0"),
        ({"style_scale": 0.0}, "style_scale"),
    ],
)
def test_each_bad_further_option_gets_one_line_naming_it(change, words):
    good = {"init": "noisy_content", "preserve_colours": None, "tv_weight": 0.0, "style_scale": 1.0}
    nst_utils.check_further_options(**good)
    with pytest.raises(ValueError) as error:
        nst_utils.check_further_options(**{**good, **change})
    assert words in str(error.value) and "\n" not in str(error.value)
