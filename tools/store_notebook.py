"""Re-execute a notebook at CI size and store it as nbval expects: check outputs kept, everything else empty.

    python tools/store_notebook.py notebooks/01_neural_style_transfer.ipynb

Cells marked `# NBVAL_IGNORE_OUTPUT` (images, timings, widgets) are stored without outputs; the other cells keep
their text outputs, which `pytest --nbval` then compares. Image and widget data are never stored.
"""

import os
import runpy
import sys
from pathlib import Path

import nbformat
from nbclient import NotebookClient

IGNORE_MARK = "# NBVAL_IGNORE_OUTPUT"
# the sizes every CI run of the notebook uses, shared with the tests' conftest.py
CI_ENVIRONMENT = runpy.run_path(str(Path(__file__).resolve().parents[1] / "tests" / "ci_sizes.py"))["CI_ENVIRONMENT"]


def keep_text_only(outputs: list) -> list:
    """Drop image and widget data from a cell's outputs, keeping stdout and text/plain results.

    stderr is dropped too: here it holds the kernel's own log (TensorFlow's start-up lines where oneDNN is on),
    which reaches this client but not nbval's, so a stored copy would never match."""
    kept = []
    for output in outputs:
        if output.get("output_type") == "stream" and output.get("name") == "stderr":
            continue
        if output.get("output_type") == "stream" or "text/plain" in output.get("data", {}):
            if "data" in output:
                output["data"] = {"text/plain": output["data"]["text/plain"]}
                output["metadata"] = {}
            if kept and output.get("output_type") == "stream" and kept[-1].get("name") == output.get("name"):
                kept[-1]["text"] += output["text"]  # one stream, however the kernel's writes were split
                continue
            kept.append(output)
    return kept


def main(path: str) -> None:
    notebook_path = Path(path)
    notebook = nbformat.read(notebook_path, as_version=4)
    os.environ.update({k: os.environ.get(k, v) for k, v in CI_ENVIRONMENT.items()})
    os.environ.setdefault("NST_OUTPUT_DIR", str(Path(os.environ.get("TMPDIR", "/tmp")) / "nst-store-notebook"))
    resources = {"metadata": {"path": str(notebook_path.parent)}}
    NotebookClient(notebook, timeout=600, record_timing=False, resources=resources).execute()  # no timestamps to diff
    for cell in notebook.cells:
        if cell.cell_type != "code":
            continue
        cell.outputs = [] if cell.source.startswith(IGNORE_MARK) else keep_text_only(cell.outputs)
        cell.metadata.pop("execution", None)  # timestamps of an earlier store
        if not cell.outputs:
            cell.execution_count = None  # nbval needs a count only where it compares outputs
    notebook.metadata.pop("widgets", None)
    nbformat.write(notebook, notebook_path)
    print(f"stored {notebook_path} ({notebook_path.stat().st_size / 1024:.1f} KB)")


if __name__ == "__main__":
    main(sys.argv[1])
