# The two commands of the README. Both create .venv (CPU torch pinned first, so pip never pulls CUDA
# wheels on a CPU machine), install subspace-hub and every first-party plugin in editable mode, then run.
#   make quickstart   set up and run the quickstart pipeline
#   make test         set up, check the style rules (ruff lint + format) and run the whole test suite
# Variables: PYTHON (interpreter for the venv), VENV (its folder), TORCH_SPEC (e.g. "torch==2.13.0" or a CUDA
# build you installed yourself), PYTEST_ARGS (extra pytest arguments).

PYTHON ?= python3
VENV ?= .venv
TORCH_SPEC ?= torch==2.13.0
PYTEST_ARGS ?=
BIN := $(VENV)/bin
PLUGIN_PROJECTS := $(wildcard plugins/*/pyproject.toml)
EDITABLES := -e ".[test]" $(foreach p,$(PLUGIN_PROJECTS),-e "./$(patsubst %/,%,$(dir $(p)))")

.PHONY: setup quickstart test clean

setup: $(VENV)/.setup-done

$(VENV)/.setup-done: pyproject.toml $(PLUGIN_PROJECTS)
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install "$(TORCH_SPEC)"
	$(BIN)/python -m pip install $(EDITABLES)
	touch $@

quickstart: setup
	$(BIN)/subspace-hub plugins
	$(BIN)/subspace-hub quickstart --out runs/quickstart

test: setup
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/python -m pytest $(PYTEST_ARGS)

clean:
	rm -rf $(VENV) .pytest_cache build *.egg-info
