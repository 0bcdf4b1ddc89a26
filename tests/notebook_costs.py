"""The notebook's cost cells, loaded for tests: the costs live only in the notebook, so tests take them from there."""

import re
from pathlib import Path

import nbformat
import numpy as np
import tensorflow as tf

import nst_utils

NOTEBOOK_PATH = Path(__file__).resolve().parents[1] / "notebooks" / "01_neural_style_transfer.ipynb"
COSTS = ("compute_content_cost", "gram_matrix", "compute_layer_style_cost", "compute_style_cost", "total_cost")


def cost_cells() -> dict[str, tuple[str, list[str]]]:
    """For each cost: the source of its definition cell and of the check cells that follow it."""
    cells = [c.source for c in nbformat.read(NOTEBOOK_PATH, as_version=4).cells if c.cell_type == "code"]
    pieces = {}
    for name in COSTS:
        start = next(i for i, src in enumerate(cells) if re.search(rf"^def {name}\(", src, re.M))
        checks = []
        for src in cells[start + 1 :]:
            if "check_close(" not in src and "passed" not in src:
                break
            checks.append(src)
        pieces[name] = (cells[start], checks)
    return pieces


def run_cells(definitions: dict[str, str], checks: list[str] = ()) -> tuple[dict, list[str]]:
    """Execute cost definitions, then check cells; returns the namespace and what the checks printed."""
    namespace = {"tf": tf, "np": np, "nst_utils": nst_utils}
    for source in definitions.values():
        exec(source, namespace)
    printed = []
    namespace["print"] = lambda *args: printed.append(" ".join(map(str, args)))
    for source in checks:
        exec(source, namespace)
    return namespace, printed


def notebook_costs() -> dict:
    """The notebook's cost functions by name, defined exactly as the notebook defines them."""
    namespace, _ = run_cells({name: d for name, (d, _) in cost_cells().items()})
    return {name: namespace[name] for name in COSTS}
