# `make test` and `make demo` create the virtual environment on first use.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python

.PHONY: test test-fast demo build-ops clean-venv

$(VENV)/.installed: requirements.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements.txt
	touch $@

test: $(VENV)/.installed
	$(PY) -m pytest -ra tests

# Everything except the CUDA compile tests and the slow end-to-end runs.
test-fast: $(VENV)/.installed
	$(PY) -m pytest -ra -m "not cuda_build and not slow" tests

demo: $(VENV)/.installed
	$(PY) scripts/demo.py

build-ops: $(VENV)/.installed
	$(PY) -m torch_utils.ops --build

clean-venv:
	rm -rf $(VENV)
