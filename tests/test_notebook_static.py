"""The stored notebook: small, without image outputs, costs defined once, ready for papermill and nbval."""

import ast
import re

import nbformat
import pytest
from notebook_costs import COSTS

from nst.paths import NOTEBOOK_PATH, PROJECT_DIR
from nst.settings import field_names


@pytest.fixture(scope="module")
def notebook():
    return nbformat.read(NOTEBOOK_PATH, as_version=4)


def code_cells(notebook) -> list:
    return [cell for cell in notebook.cells if cell.cell_type == "code"]


def is_parameters_cell(cell) -> bool:
    return "parameters" in cell.metadata.get("tags", [])


def test_the_cells_a_headless_run_skips_come_last_and_paint_the_sample_photo(notebook):
    """`stylise` skips the cells tagged SAMPLE_DEMO_TAG: nothing after them may need what they make."""
    from nst.headless import SAMPLE_DEMO_TAG

    code = code_cells(notebook)
    tagged = [index for index, cell in enumerate(code) if SAMPLE_DEMO_TAG in cell.metadata.get("tags", [])]
    assert tagged, f"no cell is tagged {SAMPLE_DEMO_TAG}: a headless run would paint the sample photo too"
    assert tagged == list(range(tagged[0], len(code))), f"code cells after a skipped one: {tagged}"
    assert "nst_utils.SAMPLE_CONTENT_PATH" in code[tagged[0]].source, "a skipped cell paints the sample photo"


def test_stored_notebook_is_small(notebook):
    size_kb = NOTEBOOK_PATH.stat().st_size / 1024
    assert size_kb < 150, f"{NOTEBOOK_PATH.name} is {size_kb:.0f} KB; run tools/store_notebook.py to strip outputs"


def test_no_image_or_widget_outputs(notebook):
    for index, cell in enumerate(notebook.cells):
        for output in cell.get("outputs", []):
            kinds = set(output.get("data", {}))
            assert kinds <= {"text/plain"}, f"cell {index} stores {kinds - {'text/plain'}}: store text outputs only"
    assert "widgets" not in notebook.metadata, "widget state is stored in the notebook metadata"


def test_stored_without_timestamps_and_one_stream_each(notebook):
    """No run's timestamps to diff, and a cell's stdout in one piece however the kernel split its writes."""
    for index, cell in enumerate(code_cells(notebook)):
        assert "execution" not in cell.metadata, f"code cell {index} stores timestamps: run tools/store_notebook.py"
        names = [output.name for output in cell.outputs if output.output_type == "stream"]
        assert len(names) == len(set(names)), f"code cell {index} stores its {names} in pieces"


def test_store_notebook_joins_a_split_stream_and_drops_stderr():
    import sys

    sys.path.insert(0, str(PROJECT_DIR / "tools"))
    from store_notebook import keep_text_only

    split = [
        {"output_type": "stream", "name": "stdout", "text": "check: passed"},
        {"output_type": "stream", "name": "stderr", "text": "I0000 oneDNN custom operations are on"},
        {"output_type": "stream", "name": "stdout", "text": "\n"},
        {"output_type": "display_data", "data": {"image/png": "…", "text/plain": "<Figure>"}, "metadata": {}},
    ]
    kept = keep_text_only(split)
    assert kept[0] == {"output_type": "stream", "name": "stdout", "text": "check: passed\n"}
    assert kept[1]["data"] == {"text/plain": "<Figure>"} and len(kept) == 2


def test_ignored_cells_are_stored_empty(notebook):
    for index, cell in enumerate(notebook.cells):
        if cell.cell_type == "code" and cell.source.startswith("# NBVAL_IGNORE_OUTPUT"):
            assert not cell.outputs, f"cell {index} is marked NBVAL_IGNORE_OUTPUT but stores outputs"


def test_every_check_cell_stores_its_success_line(notebook):
    check_cells = [c for c in code_cells(notebook) if "check_close(" in c.source]
    assert len(check_cells) >= len(COSTS)
    for cell in check_cells:
        printed = "".join(o.get("text", "") for o in cell.outputs)
        assert printed.strip().endswith("passed"), f"stored output of a check cell is {printed!r}"


def test_parameters_cell_is_tagged_for_papermill(notebook):
    tagged = [c for c in notebook.cells if is_parameters_cell(c)]
    assert len(tagged) == 1
    for name in ("content_path", "style_path", "max_side_px", "iterations", "alpha", "beta", "style_layers"):
        assert re.search(rf"^{name} = ", tagged[0].source, re.M), f"parameter {name} missing"


def test_the_settings_are_checked_right_after_the_parameters_cell(notebook):
    cells = code_cells(notebook)
    index = next(i for i, cell in enumerate(cells) if is_parameters_cell(cell))
    assert cells[index + 1].source.strip() == "settings = nst_utils.Settings.from_namespace(globals())"


def test_costs_are_defined_only_in_the_notebook(notebook):
    sources = "\n".join(c.source for c in code_cells(notebook))
    for name in COSTS:
        assert len(re.findall(rf"^def {name}\(", sources, re.M)) == 1, f"{name} must be defined once in the notebook"
    python_files = [PROJECT_DIR.glob(f"{folder}*.py") for folder in ("", "nst/", "tests/", "bench/", "tools/")]
    for path in [path for paths in python_files for path in paths]:
        text = path.read_text()
        for name in COSTS:
            assert not re.search(rf"^\s*def {name}\(", text, re.M), f"{path.name} defines a copy of {name}"
    for path in sorted(NOTEBOOK_PATH.parent.glob("*.ipynb")):  # the other notebooks load the costs, never copy them
        if path != NOTEBOOK_PATH:
            other = "\n".join(c.source for c in code_cells(nbformat.read(path, as_version=4)))
            for name in COSTS:
                assert not re.search(rf"^\s*def {name}\(", other, re.M), f"{path.name} defines a copy of {name}"


def names_bound_at_top_level(source: str) -> set[str]:
    """The names a cell binds outside its functions and classes (assignments, loops, imports, with ... as)."""
    tree = compile(source, "<cell>", "exec", flags=ast.PyCF_ONLY_AST | ast.PyCF_ALLOW_TOP_LEVEL_AWAIT)
    bound, pending = set(), list(tree.body)
    while pending:
        node = pending.pop()
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            bound.add(node.name)
            continue  # names inside a function are its own
        if isinstance(node, (ast.Lambda, ast.ListComp, ast.SetComp, ast.DictComp, ast.GeneratorExp)):
            continue  # so are a lambda's and a comprehension's
        if isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store):
            bound.add(node.id)
        elif isinstance(node, ast.alias):
            bound.add((node.asname or node.name).split(".")[0])
        pending.extend(ast.iter_child_nodes(node))
    return bound


def test_the_notebook_does_not_shadow_its_settings():
    """`optimizer` is a setting ("adam"/"lbfgs"); a later cell rebinding it would look like a change but do nothing,
    since `settings` was built from the parameters cell. Only the parameters cell binds a setting's name."""
    notebook = nbformat.read(NOTEBOOK_PATH, as_version=4)
    for cell in code_cells(notebook):
        if not is_parameters_cell(cell):
            for name in ("optimizer", "precision", "coarse_to_fine", "iterations"):
                assert f"\n{name} = " not in f"\n{cell.source}", f"a cell rebinds the setting {name}:\n{cell.source}"
            rebound = names_bound_at_top_level(cell.source) & set(field_names())
            assert not rebound, f"a cell rebinds the settings {sorted(rebound)}:\n{cell.source}"
