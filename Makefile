# `make test` and `make demo` create the virtual environment on first use.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python

.PHONY: test test-fast demo build-ops gpu-check clean-venv lock mutants

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

# GPU acceptance run (never part of `make test`). PYTHON=... on the command line uses that interpreter
# as it is (an existing CUDA environment, no venv); WHEELS=DIR installs what it lacks from a folder of wheels.
ifeq ($(origin PYTHON),command line)
GPU_PY := $(PYTHON)
GPU_DEPS :=
else
GPU_PY := $(PY)
GPU_DEPS := $(VENV)/.installed
endif

gpu-check: $(GPU_DEPS)
	$(GPU_PY) bench/gpu_check.py --md=gpu-check.md $(if $(WHEELS),--install-wheels=$(WHEELS))

# Pins requirements.txt and all its dependencies to exact versions in requirements.lock (one file for
# Linux x86_64 and aarch64, Python 3.11+). Needs only the venv and uv, not the full install; pins already
# in requirements.lock are kept while they still fit. Never part of `make test`.
lock:
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m uv --version >/dev/null 2>&1 || $(PY) -m pip install --quiet uv
	$(PY) -m uv pip compile requirements.txt -o requirements.lock --python-version 3.11 --universal

# The mutation corpus (tests/mutants/*.patch): each planted bug alone in a scratch copy, its named tests
# must fail. Not part of `make test`.
mutants: $(VENV)/.installed
	$(PY) tests/mutants/run.py

clean-venv:
	rm -rf $(VENV)
