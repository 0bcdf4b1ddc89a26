# Two commands on a fresh machine:  make run  (stylise the sample images)  and  make test  (run every test).
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

# make run CONTENT=my_photo.jpg STYLE=my_painting.jpg ITERATIONS=300 MAX_SIDE=512 ALPHA=10 BETA=40
# (any other notebook parameter: make run PARAMS="-p learning_rate 0.02 -p content_layer conv5_2")
CONTENT ?=
STYLE ?=
ITERATIONS ?=
MAX_SIDE ?=
ALPHA ?=
BETA ?=
PARAMS ?=

.PHONY: setup test lint run lab weights clean-venv

setup: $(STAMP)  ## create .venv from the pinned requirements.txt

$(STAMP): requirements.txt
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements.txt
	$(PY) -m pip install --quiet --no-deps -e .
	touch $@

lint: $(STAMP)  ## ruff on the code and the notebooks
	$(PY) -m ruff check .
	$(PY) -m ruff format --check .

test: $(STAMP)  ## every test: unit tests and the notebook under nbval (strict)
	$(PY) -m pytest

run: $(STAMP)  ## stylise the sample images (or CONTENT=… STYLE=…) headless into a new output/ folder
	$(PY) nst_utils.py stylise $(if $(CONTENT),--content "$(CONTENT)") $(if $(STYLE),--style "$(STYLE)") \
	  $(if $(ITERATIONS),-p iterations $(ITERATIONS)) $(if $(MAX_SIDE),-p max_side_px $(MAX_SIDE)) \
	  $(if $(ALPHA),-p alpha $(ALPHA)) $(if $(BETA),-p beta $(BETA)) $(PARAMS)

lab: $(STAMP)  ## open the notebook in JupyterLab
	$(VENV)/bin/jupyter lab notebooks/01_neural_style_transfer.ipynb

weights: $(STAMP)  ## download the Keras VGG-19 weights (80 MB) into pretrained-model/
	$(PY) nst_utils.py download keras

clean-venv:
	rm -rf $(VENV)
