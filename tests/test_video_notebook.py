"""Notebook 02 as stored: its temporal cost (which lives only there), its costs written once, small and clean."""

import re

import nbformat
import numpy as np
import pytest

from nst import video
from nst.paths import PROJECT_DIR
from nst.video_settings import VIDEO_NOTEBOOK_PATH, field_names
from nst.video_synthetic import moving_square_frames

FIRST_NOTEBOOK_COSTS = ("compute_content_cost", "gram_matrix", "compute_layer_style_cost", "compute_style_cost")


@pytest.fixture(scope="module")
def notebook():
    return nbformat.read(VIDEO_NOTEBOOK_PATH, as_version=4)


@pytest.fixture(scope="module")
def compute_temporal_cost(notebook):
    """compute_temporal_cost as notebook 02 defines it, executed from its cell."""
    import tensorflow as tf

    (cell,) = [c.source for c in notebook.cells if re.search(r"^def compute_temporal_cost\(", c.source, re.M)]
    namespace = {"tf": tf, "np": np}
    exec(cell, namespace)
    return namespace["compute_temporal_cost"]


def batch(image):
    import tensorflow as tf

    return tf.constant(np.asarray(image, np.float32)[np.newaxis])


def test_the_temporal_cost_is_zero_when_G_t_is_the_warped_G_previous(compute_temporal_cost):
    frames = moving_square_frames(2, 48, 64, 16, 2)
    back = video.optical_flow(frames[1], frames[0])
    c = video.consistency_mask(back, video.optical_flow(frames[0], frames[1]))[..., np.newaxis]
    G_previous = np.random.default_rng(0).random((48, 64, 3)).astype(np.float32)  # any stylised frame
    warped = video.warp(G_previous, back)
    assert float(compute_temporal_cost(batch(warped), batch(warped), batch(c))) == 0.0
    other = np.clip(warped + 0.1, 0, 1)
    assert float(compute_temporal_cost(batch(other), batch(warped), batch(c))) > 0.0


def test_the_temporal_cost_counts_only_trusted_pixels_over_all_of_D(compute_temporal_cost):
    G = np.ones((2, 2, 3), np.float32)
    c = np.array([[[1.0], [0.0]], [[0.0], [0.0]]], np.float32)  # one trusted pixel of four
    J = float(compute_temporal_cost(batch(G), batch(np.zeros_like(G)), batch(c)))
    assert abs(J - 3 / 12) < 1e-7  # three unit squares over D = 2·2·3


def test_each_cost_is_defined_once_in_the_whole_repository(notebook):
    sources = {path: path.read_text() for path in PROJECT_DIR.glob("nst/*.py")}
    sources.update({path: path.read_text() for path in PROJECT_DIR.glob("*.py")})
    for path in PROJECT_DIR.glob("notebooks/*.ipynb"):
        sources[path] = "\n".join(c.source for c in nbformat.read(path, as_version=4).cells)
    for name in (*FIRST_NOTEBOOK_COSTS, "total_cost", "compute_temporal_cost"):
        defining = [p.name for p, text in sources.items() if re.search(rf"^def {name}\(", text, re.M)]
        assert len(defining) == 1, f"{name} is defined in {defining}: a cost lives in exactly one place"
    video_sources = "\n".join(c.source for c in notebook.cells)
    assert "nst_utils.notebook_costs()" in video_sources, "notebook 02 loads the first notebook's costs"


def test_stored_small_without_image_outputs(notebook):
    assert VIDEO_NOTEBOOK_PATH.stat().st_size < 100 * 1024, "run tools/store_notebook.py on notebook 02"
    for index, cell in enumerate(notebook.cells):
        for output in cell.get("outputs", []):
            assert set(output.get("data", {})) <= {"text/plain"}, f"cell {index} stores an image or widget"
    assert "widgets" not in notebook.metadata


def test_the_parameters_cell_holds_every_video_setting(notebook):
    (cell,) = [c for c in notebook.cells if "parameters" in c.metadata.get("tags", [])]
    assigned = re.findall(r"^(\w+) = ", cell.source, re.M)
    assert assigned == list(field_names()), "the parameters cell and VideoSettings must list the same names, in order"
