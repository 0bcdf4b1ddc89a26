"""nst.settings: bad settings stop in one line that names the value and the fix, before any long run starts.

Settings is a frozen dataclass checked in __post_init__; parse_setting reads `-p NAME VALUE` into the declared
types; the notebook's parameters cell holds the same names, in the same order, with the same defaults.
"""

import ast
import dataclasses
import json
import math
import os

import nbformat
import pytest

import nst_utils
from nst.errors import SettingsError
from nst.paths import NOTEBOOK_PATH
from nst.settings import (
    FIRST_SIZE_MAX_SIDE_PX,
    MAX_ITERATIONS,
    OPTIMISER_SCHEDULES,
    Settings,
    field_names,
    parse_setting,
)

GOOD = dict(
    alpha=10.0,
    beta=40.0,
    content_layer="conv4_2",
    style_layers=[("conv1_1", 0.2), ("conv2_1", 0.2), ("conv3_1", 0.2), ("conv4_1", 0.2), ("conv5_1", 0.2)],
    iterations=200,
    save_every=100,
    learning_rate=0.01,
    max_side_px=400,
    optimizer="lbfgs",
    coarse_to_fine=2,
    coarse_iterations=10,
    precision="fp32",
    init="noisy_content",
    preserve_colours=None,
    tv_weight=0.0,
    style_scale=1.0,
)


def assert_one_line_naming(error: pytest.ExceptionInfo, words: str) -> None:
    assert words in str(error.value) and "\n" not in str(error.value), str(error.value)


def test_settings_errors_are_value_errors():
    assert issubclass(SettingsError, ValueError)


def test_good_settings_pass_and_style_layers_come_back_as_pairs():
    assert Settings(**{**GOOD, "style_layers": [["conv1_1", 1]]}).style_layers == (("conv1_1", 1.0),)


@pytest.mark.parametrize(
    ("optimizer", "schedule"),
    [("adam", (2, 100, 10)), ("lbfgs", (1, 20, 20))],
)
def test_each_optimiser_has_its_own_sizes_and_iterations(optimizer, schedule):
    """Left None, coarse_to_fine, coarse_iterations and iterations are the optimiser's: `-p optimizer lbfgs` alone
    is L-BFGS's 20 iterations at full size, not 100 L-BFGS iterations at half size inherited from Adam."""
    settings = Settings(optimizer=optimizer)
    assert (settings.coarse_to_fine, settings.coarse_iterations, settings.iterations) == schedule
    names = ("coarse_to_fine", "coarse_iterations", "iterations")
    assert OPTIMISER_SCHEDULES[optimizer] == dict(zip(names, schedule, strict=True))
    assert settings.asdict()["iterations"] == schedule[2], "params.json records what ran, not None"
    given = Settings(optimizer=optimizer, iterations=7, coarse_to_fine=3, coarse_iterations=0)
    assert (given.coarse_to_fine, given.coarse_iterations, given.iterations) == (3, 0, 7), "given values are kept"
    assert Settings(optimizer=optimizer, iterations=None).iterations == schedule[2]
    assert Settings(**Settings(optimizer=optimizer).asdict()) == settings, "a params.json reads back as the same run"


@pytest.mark.parametrize(
    ("max_side_px", "sizes"),
    [(64, 2), (400, 2), (1024, 2), (1025, 3), (1920, 3), (2048, 3), (2049, 4), (3840, 4), (8192, 5)],
)
def test_adam_s_default_adds_sizes_for_a_large_image_until_the_first_is_at_most_512_px(max_side_px, sizes):
    """Up to 1024 px two sizes, as judged; above it one more size per doubling, so that the picture is composed at
    no more than 512 px and every later size refines it. Given values, and L-BFGS's one size, are kept."""
    assert Settings(max_side_px=max_side_px).coarse_to_fine == sizes
    first_side_px = max_side_px / 2 ** (sizes - 1)
    assert first_side_px <= FIRST_SIZE_MAX_SIDE_PX and (sizes == 2 or first_side_px > FIRST_SIZE_MAX_SIDE_PX / 2)
    assert Settings(max_side_px=max_side_px, coarse_to_fine=2).coarse_to_fine == 2
    assert Settings(max_side_px=max_side_px, optimizer="lbfgs").coarse_to_fine == 1


def test_the_defaults_pass_and_settings_are_frozen():
    settings = Settings()
    with pytest.raises(dataclasses.FrozenInstanceError):
        settings.iterations = 5


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
    with pytest.raises(SettingsError) as error:
        Settings(**{**GOOD, **change})
    assert_one_line_naming(error, words)


def test_zero_iterations_is_allowed():
    assert Settings(**{**GOOD, "iterations": 0}).iterations == 0


@pytest.mark.parametrize(
    ("change", "words"),
    [
        ({"optimizer": "sgd"}, "optimizer"),
        ({"coarse_to_fine": 0}, "coarse_to_fine"),
        ({"precision": "fp16"}, "precision"),
    ],
)
def test_speed_options_are_checked_in_one_line(change, words):
    with pytest.raises(SettingsError) as error:
        Settings(**{**GOOD, **change})
    assert_one_line_naming(error, words)


@pytest.mark.parametrize(
    ("change", "words"),
    [
        ({"init": "noisy"}, "init='noisy' is unknown; choose one of noisy_content, content, style, noise"),
        ({"preserve_colours": "yes"}, "preserve_colours='yes'"),
        ({"tv_weight": -1.0}, "tv_weight=-1.0"),
        ({"style_scale": 0.0}, "style_scale"),
        ({"style_scale": 0}, "style_scale must be a finite number above 0"),
        ({"style_scale": -1.0}, "got -1.0"),
        ({"style_scale": math.inf}, "got inf"),
        ({"style_scale": math.nan}, "got nan"),
        ({"style_scale": "1"}, "got '1'"),
    ],
)
def test_each_bad_further_option_gets_one_line_naming_it(change, words):
    with pytest.raises(SettingsError) as error:
        Settings(**{**GOOD, **change})
    assert_one_line_naming(error, words)


@pytest.mark.parametrize(
    ("change", "words"),
    [
        ({"iterations": 2.5}, "iterations=2.5"),
        ({"iterations": True}, "iterations=True"),
        ({"iterations": MAX_ITERATIONS + 1}, f"at most {MAX_ITERATIONS:,}"),
        ({"coarse_iterations": -1}, "coarse_iterations=-1"),
        ({"seed": -1}, "seed=-1"),
        ({"max_side_px": 400.5}, "max_side_px=400.5"),
        ({"noise_ratio": 1.5}, "noise_ratio=1.5"),
        ({"pooling": "min"}, "pooling='min'"),
        ({"weights": 3}, "weights=3"),
        ({"live_view": "yes"}, "live_view='yes'"),
        ({"content_path": None}, "content_path=None"),
        ({"style_images": [("a.jpg", -1.0)]}, "style weight -1.0 for a.jpg"),
    ],
)
def test_other_bad_settings_get_one_line_naming_them(change, words):
    with pytest.raises(SettingsError) as error:
        Settings(**{**GOOD, **change})
    assert_one_line_naming(error, words)


def test_settings_normalise_their_values():
    settings = Settings(
        max_side_px=512.0, iterations=40.0, style_images=[("a.jpg", 3), ("b.jpg", 1)], content_path=NOTEBOOK_PATH
    )
    assert settings.max_side_px == 512 and isinstance(settings.max_side_px, int)
    assert settings.iterations == 40 and isinstance(settings.iterations, int)
    assert settings.style_images == (("a.jpg", 0.75), ("b.jpg", 0.25))
    assert settings.styles == settings.style_images
    assert settings.content_path == str(NOTEBOOK_PATH)
    assert Settings(style_path="b.jpg").styles == (("b.jpg", 1.0),)


def test_the_deepest_layer_is_the_deepest_of_content_and_style():
    assert Settings().deepest_layer == "conv5_1"
    shallow = Settings(content_layer="conv2_1", style_layers=[("conv1_1", 1.0), ("conv3_1", 1.0)])
    assert shallow.deepest_layer == "conv3_1"


def test_the_largest_iteration_count_is_allowed():
    assert Settings(iterations=MAX_ITERATIONS).iterations == MAX_ITERATIONS


def test_style_masks_pair_one_mask_with_each_style():
    assert Settings().style_masks is None
    assert Settings(style_masks="leaves.png").style_masks == ("leaves.png",), "a bare path is a list of one"
    assert Settings(style_masks=[NOTEBOOK_PATH]).style_masks == (str(NOTEBOOK_PATH),)
    blended = Settings(style_images=[("a.jpg", 3), ("b.jpg", 1)], style_masks=["sky.png", "ground.png"])
    assert blended.style_masks == ("sky.png", "ground.png")
    assert Settings(**blended.asdict()) == blended, "params.json makes the same Settings"
    one_masked = Settings(style_images=["a.jpg", "b.jpg"], style_masks=[None, "ground.png"])
    assert one_masked.style_masks == (None, "ground.png"), "None: that style paints everywhere"


@pytest.mark.parametrize(
    ("change", "words"),
    [
        ({"style_masks": ["a.png", "b.png"]}, "style_masks has 2 masks for 1 style image (style_path): give one mask"),
        ({"style_masks": []}, "style_masks has 0 masks for 1 style image (style_path)"),
        (
            {"style_masks": ["a.png"], "style_images": [("a.jpg", 1), ("b.jpg", 1)]},
            "style_masks has 1 mask for 2 style images in style_images: give one mask per style image, in the same",
        ),
        ({"style_masks": 3}, "style_masks=3: expected a list of mask image paths, one per style, e.g. style_masks="),
        ({"style_masks": [("a.png", 1.0)]}, "style_masks=[('a.png', 1.0)]: expected a list of mask image paths"),
    ],
)
def test_more_or_fewer_masks_than_styles_is_one_line(change, words):
    with pytest.raises(SettingsError) as error:
        Settings(**{**GOOD, **change})
    assert_one_line_naming(error, words)


# ---------------------------------------------------------------------------- parse_setting: `-p NAME VALUE`


@pytest.mark.parametrize(
    ("name", "text", "expected"),
    [
        ("style_layers", "[('conv1_1', 1.0), ('conv3_1', 0.5)]", [("conv1_1", 1.0), ("conv3_1", 0.5)]),
        ("style_images", "[('a.jpg', 0.7), ('b.jpg', 0.3)]", [("a.jpg", 0.7), ("b.jpg", 0.3)]),
        ("iterations", "40", 40),
        ("iterations", "1e3", 1000),
        ("max_side_px", "512", 512),
        ("alpha", "10", 10.0),
        ("learning_rate", "0.02", 0.02),
        ("tv_weight", "1e-6", 1e-6),
        ("weights", "None", None),
        ("preserve_colours", "None", None),
        ("style_images", "None", None),
        ("content_layer", "conv5_2", "conv5_2"),
        ("optimizer", "lbfgs", "lbfgs"),
        ("preserve_colours", "luminance", "luminance"),
        ("content_layer", "'conv5_2'", "conv5_2"),
        ("content_path", "photos/1.jpg", "photos/1.jpg"),
        ("live_view", "False", False),
        ("style_masks", "images/leaves mask.png", ("images/leaves mask.png",)),
        ("style_masks", "['sky.png', 'ground.png']", ["sky.png", "ground.png"]),
        ("style_masks", "None", None),
        ("style_masks", "[None, 'ground.png']", [None, "ground.png"]),
    ],
)
def test_parse_setting_gives_the_declared_type(name, text, expected):
    value = parse_setting(name, text)
    assert value == expected and type(value) is type(expected), (value, expected)


def test_parsed_style_layers_make_settings():
    settings = Settings(style_layers=parse_setting("style_layers", "[('conv1_1', 1.0), ('conv3_1', 0.5)]"))
    assert settings.style_layers == (("conv1_1", 1.0), ("conv3_1", 0.5))


@pytest.mark.parametrize(
    ("name", "text", "expected_form"),
    [
        ("iterations", "abc", "expected a whole number"),
        ("iterations", "2.5", "expected a whole number"),
        ("max_side_px", "abc", "expected a whole number"),
        ("alpha", "[1", "expected a number"),
        ("beta", "ten", "expected a number"),
        ("live_view", "maybe", "expected True or False"),
        ("style_layers", "conv1_1", "expected a list of (name, number) pairs"),
    ],
)
def test_a_value_that_cannot_be_parsed_is_one_line_naming_the_parameter(name, text, expected_form):
    with pytest.raises(SettingsError) as error:
        parse_setting(name, text)
    assert str(error.value).startswith(f"{name}={text!r}: {expected_form}"), str(error.value)
    assert "\n" not in str(error.value)


def test_an_unknown_parameter_lists_the_valid_ones():
    with pytest.raises(SettingsError) as error:
        parse_setting("iterationz", "5")
    assert_one_line_naming(error, "unknown parameter iterationz; the parameters are content_path, style_path")


def test_a_billion_iterations_is_refused():
    iterations = parse_setting("iterations", "1e9")
    assert iterations == 10**9
    with pytest.raises(SettingsError) as error:
        Settings(iterations=iterations)
    assert_one_line_naming(error, f"iterations=1000000000: at most {MAX_ITERATIONS:,}")


# ---------------------------------------------------------------------------- as JSON, from a namespace


def test_asdict_is_json_with_lists_for_pairs():
    plain = Settings(style_images=[("a.jpg", 1.0)]).asdict()
    assert json.loads(json.dumps(plain)) == plain
    assert list(plain) == list(field_names())
    assert plain["style_layers"] == [[name, 0.2] for name in ("conv1_1", "conv2_1", "conv3_1", "conv4_1", "conv5_1")]
    assert plain["style_images"] == [["a.jpg", 1.0]]
    assert Settings(**plain) == Settings(style_images=[("a.jpg", 1.0)]), "params.json makes the same Settings"


def test_from_namespace_takes_the_settings_and_ignores_other_names():
    namespace = {"iterations": 7, "alpha": 3.0, "np": object(), "__name__": "__main__", "settings": None}
    assert Settings.from_namespace(namespace) == Settings(iterations=7, alpha=3.0)
    with pytest.raises(SettingsError, match="iterations=-1"):
        Settings.from_namespace({"iterations": -1})


# ---------------------------------------------------------------------------- the notebook's parameters cell


def parameters_cell_source() -> str:
    cells = nbformat.read(NOTEBOOK_PATH, as_version=4).cells
    (cell,) = [c for c in cells if c.cell_type == "code" and "parameters" in c.metadata.get("tags", [])]
    return cell.source


def plain(value):
    """Tuples and lists alike, as lists, to compare the cell's values with the dataclass defaults."""
    return [plain(item) for item in value] if isinstance(value, (tuple, list)) else value


def test_the_parameters_cell_assigns_the_settings_in_order():
    assigned = []
    for statement in ast.parse(parameters_cell_source()).body:
        assert isinstance(statement, ast.Assign), f"the parameters cell holds plain assignments only: {statement}"
        assert len(statement.targets) == 1 and isinstance(statement.targets[0], ast.Name)
        assigned.append(statement.targets[0].id)
    assert assigned == list(field_names())


def test_the_parameters_cell_defaults_are_the_settings_defaults(monkeypatch):
    for name in [name for name in os.environ if name.startswith("NST_")]:
        monkeypatch.delenv(name)
    namespace = {"os": os, "nst_utils": nst_utils}
    exec(parameters_cell_source(), namespace)
    declared = {field.name: field.default for field in dataclasses.fields(Settings)}  # None: the optimiser's own
    for name in field_names():
        value, default = plain(namespace[name]), plain(declared[name])
        assert value == default and type(value) is type(default), f"{name} = {namespace[name]!r}, Settings: {default!r}"
    assert Settings.from_namespace(namespace) == Settings()
