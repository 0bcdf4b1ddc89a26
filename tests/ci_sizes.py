"""The settings of every CI run of the notebook, in one place: the tests (conftest.py) and tools/store_notebook.py.

The notebook's parameters cell reads these variables; stored outputs and nbval's re-run then see the same run.
"""

CI_ENVIRONMENT = {
    "NST_MAX_SIDE_PX": "64",  # long side of G, in pixels: small enough for 2 CPU cores
    "NST_ITERATIONS": "4",  # iterations of the full run: enough to show the cost falling
    "NST_MAX_FRAMES": "6",  # frames of the video notebook's clip
    "NST_LIVE_VIEW": "0",  # a progress bar, not widgets (nothing to render in CI)
    "NST_WEIGHTS": "random",  # weights=None means random features: no download, the same run on every machine
    "TF_CPP_MIN_LOG_LEVEL": "2",  # TensorFlow's start-up chatter off
}
