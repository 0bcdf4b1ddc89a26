"""The stored notebook: small, without image outputs, costs defined once, ready for papermill and nbval."""

import re
from pathlib import Path

import nbformat
import pytest

PROJECT_DIR = Path(__file__).resolve().parents[1]
NOTEBOOK_PATH = PROJECT_DIR / "notebooks" / "01_neural_style_transfer.ipynb"
COST_FUNCTIONS = ("compute_content_cost", "gram_matrix", "compute_layer_style_cost", "compute_style_cost", "total_cost")


@pytest.fixture(scope="module")
def notebook():
    return nbformat.read(NOTEBOOK_PATH, as_version=4)


def test_stored_notebook_is_small(notebook):
    size_kb = NOTEBOOK_PATH.stat().st_size / 1024
    assert size_kb < 150, f"{NOTEBOOK_PATH.name} is {size_kb:.0f} KB; run tools/store_notebook.py to strip outputs"


def test_no_image_or_widget_outputs(notebook):
    for index, cell in enumerate(notebook.cells):
        for output in cell.get("outputs", []):
            kinds = set(output.get("data", {}))
            assert kinds <= {"text/plain"}, f"cell {index} stores {kinds - {'text/plain'}}: store text outputs only"
    assert "widgets" not in notebook.metadata, "widget state is stored in the notebook metadata"


def test_ignored_cells_are_stored_empty(notebook):
    for index, cell in enumerate(notebook.cells):
        if cell.cell_type == "code" and cell.source.startswith("# NBVAL_IGNORE_OUTPUT"):
            assert not cell.outputs, f"cell {index} is marked NBVAL_IGNORE_OUTPUT but stores outputs"


def test_every_check_cell_stores_its_success_line(notebook):
    check_cells = [c for c in notebook.cells if c.cell_type == "code" and "check_close(" in c.source]
    assert len(check_cells) >= len(COST_FUNCTIONS)
    for cell in check_cells:
        printed = "".join(o.get("text", "") for o in cell.outputs)
        assert printed.strip().endswith("passed"), f"stored output of a check cell is {printed!r}"


def test_parameters_cell_is_tagged_for_papermill(notebook):
    tagged = [c for c in notebook.cells if "parameters" in c.metadata.get("tags", [])]
    assert len(tagged) == 1
    for name in ("content_path", "style_path", "max_side_px", "iterations", "alpha", "beta", "style_layers"):
        assert re.search(rf"^{name} = ", tagged[0].source, re.M), f"parameter {name} missing"


def test_costs_are_defined_only_in_the_notebook(notebook):
    sources = "\n".join(c.source for c in notebook.cells if c.cell_type == "code")
    for name in COST_FUNCTIONS:
        assert len(re.findall(rf"^def {name}\(", sources, re.M)) == 1, f"{name} must be defined once in the notebook"
    for path in [*PROJECT_DIR.glob("*.py"), *PROJECT_DIR.glob("tests/*.py"), *PROJECT_DIR.glob("bench/*.py")]:
        text = path.read_text()
        for name in COST_FUNCTIONS:
            assert not re.search(rf"^\s*def {name}\(", text, re.M), f"{path.name} defines a copy of {name}"
