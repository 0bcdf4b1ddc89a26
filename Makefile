# Two commands on a fresh machine:  make run  (stylise the sample images)  and  make test  (run every test).
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: setup test lint run weights bench clean-venv

setup: $(STAMP)  ## create .venv from the pinned requirements.txt

$(STAMP): requirements.txt
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements.txt
	touch $@

lint: $(STAMP)  ## ruff on the code and the notebooks
	$(PY) -m ruff check .
	$(PY) -m ruff format --check .

test: $(STAMP)  ## every test: unit tests and the notebook under nbval (strict)
	$(PY) -m pytest

weights: $(STAMP)  ## download the Keras VGG-19 weights (80 MB) into pretrained-model/
	$(PY) nst_utils.py download keras

clean-venv:
	rm -rf $(VENV)
