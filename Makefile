# Two commands on a fresh machine:  make run  (stylise the sample images)  and  make test  (run every test).
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

# make run CONTENT=my_photo.jpg STYLE=my_painting.jpg ITERATIONS=40 MAX_SIDE=512 ALPHA=10 BETA=40
# (any other notebook parameter: make run PARAMS="-p content_layer conv5_2 -p pooling max")
# many images: make run CONTENT=photos/ (a folder, or a quoted glob CONTENT='photos/*.jpg'); again: resumes
# a sweep: make run SWEEP="alpha=1,10,100 beta=10,100" (grid.png); on a Dask cluster: SCHEDULER=tcp://HOST:8786
CONTENT ?=
STYLE ?=
ITERATIONS ?=
MAX_SIDE ?=
ALPHA ?=
BETA ?=
PARAMS ?=
SWEEP ?=
SCHEDULER ?=

.PHONY: setup test lint run video lab weights bench browser clean-venv

setup: $(STAMP)  ## create .venv from the pinned requirements.txt

$(STAMP): requirements.txt pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements.txt
	$(PY) -m pip install --quiet --no-deps -e .
	touch $@

lint: $(STAMP)  ## ruff on the code and the notebooks
	$(PY) -m ruff check .
	$(PY) -m ruff format --check .

test: $(STAMP) browser lint  ## every test: lint, unit tests, the notebook under strict nbval, kernel and browser tests
	$(PY) -m pytest

browser:  ## Debian's chromium for the Playwright test and the benchmark's Run All (not Playwright's own download)
	@command -v chromium >/dev/null 2>&1 || { \
	  echo "Installing Debian's chromium for the browser test"; \
	  SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
	  $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq chromium >/dev/null; }

run: $(STAMP)  ## stylise the sample images (or CONTENT=FILE|DIR|'GLOB' STYLE=…) headless into a new output/ folder
	$(PY) nst_utils.py stylise $(if $(CONTENT),--content "$(CONTENT)") $(if $(STYLE),--style "$(STYLE)") \
	  $(if $(ITERATIONS),-p iterations $(ITERATIONS)) $(if $(MAX_SIDE),-p max_side_px $(MAX_SIDE)) \
	  $(if $(ALPHA),-p alpha $(ALPHA)) $(if $(BETA),-p beta $(BETA)) $(PARAMS) \
	  $(foreach sweep,$(SWEEP),--sweep "$(sweep)") $(if $(SCHEDULER),--scheduler "$(SCHEDULER)")

# make video INPUT=clip.mp4 STYLE=painting.jpg (a folder of frames works too; any notebook-02 parameter:
# PARAMS="-p gamma 0 -p max_frames 12"); RESUME=output/RUN_DIR continues an interrupted run
INPUT ?=
RESUME ?=

video: $(STAMP)  ## stylise the sample clip (or INPUT=… STYLE=…) frame by frame, steadily, into a new output/ folder
	$(PY) nst_utils.py video $(if $(INPUT),--input "$(INPUT)") $(if $(STYLE),--style "$(STYLE)") \
	  $(if $(RESUME),--resume "$(RESUME)") $(PARAMS)

lab: $(STAMP)  ## open the notebook in JupyterLab
	$(VENV)/bin/jupyter lab notebooks/01_neural_style_transfer.ipynb

weights: $(STAMP)  ## download the Keras VGG-19 weights (80 MB) into pretrained-model/
	$(PY) nst_utils.py download keras

bench: $(STAMP) browser  ## the full benchmark (about 2¼ h on 2 idle cores): docs/benchmark_results_<cpu kind>.md
	$(PY) bench/benchmark.py

clean-venv:
	rm -rf $(VENV)
