"""The first notebook's cost functions, loaded from its cells: the costs are written once, there, and only there.

The video notebook and the tests use them through `notebook_costs()`: each cost's definition cell is executed as it
stands, in a namespace holding tf, np and nst_utils, exactly as the notebook's own kernel would.
"""

from __future__ import annotations

import re
from pathlib import Path

from nst.paths import NOTEBOOK_PATH

# The costs the first notebook teaches, each defined in a cell of its own that starts with `def NAME(`.
COSTS = (
    "compute_content_cost",
    "gram_matrix",
    "compute_layer_style_cost",
    "compute_style_cost",
    "total_cost",
    "compute_tv_cost",
    "compute_guided_layer_style_cost",
    "compute_guided_style_cost",
)


def cost_cells(notebook_path: str | Path = NOTEBOOK_PATH) -> dict[str, tuple[str, list[str]]]:
    """For each cost: the source of its definition cell and of the check cells that follow it."""
    import nbformat

    cells = [c.source for c in nbformat.read(notebook_path, as_version=4).cells if c.cell_type == "code"]
    pieces = {}
    for name in COSTS:
        start = next((i for i, src in enumerate(cells) if re.search(rf"^def {name}\(", src, re.M)), None)
        if start is None:
            raise LookupError(f"{notebook_path}: no cell defines {name}(); the costs must stay in the notebook")
        checks = []
        for src in cells[start + 1 :]:
            if "check_close(" not in src and "passed" not in src:
                break
            checks.append(src)
        pieces[name] = (cells[start], checks)
    return pieces


def notebook_costs(notebook_path: str | Path = NOTEBOOK_PATH) -> dict:
    """The notebook's cost functions by name, defined exactly as the notebook defines them."""
    import numpy as np
    import tensorflow as tf

    import nst_utils

    namespace = {"tf": tf, "np": np, "nst_utils": nst_utils}
    for definition, _ in cost_cells(notebook_path).values():
        exec(definition, namespace)
    return {name: namespace[name] for name in COSTS}
