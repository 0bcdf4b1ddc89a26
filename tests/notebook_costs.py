"""The notebook's cost cells, for tests: nst.notebook_costs finds them (and names them, in COSTS); run_cells also runs
the check cells that follow each definition, as the notebook does."""

from nst.notebook_costs import COSTS, cost_cells, notebook_costs

__all__ = ["COSTS", "cost_cells", "notebook_costs", "run_cells"]


def run_cells(definitions: dict[str, str], checks: list[str] = ()) -> tuple[dict, list[str]]:
    """Execute cost definitions, then check cells; returns the namespace and what the checks printed."""
    import numpy as np
    import tensorflow as tf

    import nst_utils

    namespace = {"tf": tf, "np": np, "nst_utils": nst_utils}
    for source in definitions.values():
        exec(source, namespace)
    printed = []
    namespace["print"] = lambda *args: printed.append(" ".join(map(str, args)))
    for source in checks:
        exec(source, namespace)
    return namespace, printed
