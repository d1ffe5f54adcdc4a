# Two commands do all the set-up on a fresh machine (Python >= 3.11):
#   make run    creates or refreshes .venv (torch first, then the project), trains synthetic-tiny and samples from it
#   make test   the same set-up, then the test suite (what CI runs)
# On a machine whose package index serves the CUDA build of torch 2.13.0 by default (PyPI on Linux), get the CPU build
# from PyTorch's CPU index: make run TORCH_INDEX=https://download.pytorch.org/whl/cpu
PYTHON ?= python3
VENV ?= .venv
TORCH ?= torch==2.13.0
TORCH_INDEX ?=
PYTEST_ARGS ?= -n 2
BIN := $(VENV)/bin
STAMP := $(VENV)/.hierlm-installed

.PHONY: install run test sync clean-venv

# The venv is (re)built when it is missing or pyproject.toml is newer than the last install.
$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --disable-pip-version-check --upgrade pip
	$(BIN)/python -m pip install -q --disable-pip-version-check $(TORCH) $(if $(TORCH_INDEX),--index-url $(TORCH_INDEX))
	$(BIN)/python -m pip install -q --disable-pip-version-check -e ".[dev]"
	@touch $@

install: $(STAMP)

run: install
	$(BIN)/hierlm train synthetic-tiny
	$(BIN)/hierlm generate runs/synthetic-tiny --prompt "Ka" --max-tokens 120

test: install               # the venv's commands first on PATH, as if it were activated
	PATH="$(abspath $(BIN)):$$PATH" $(BIN)/pytest $(PYTEST_ARGS)

# CI: notebooks and the package they export are in sync (nbdev-export and nbdev-clean leave no diff)
sync: install
	$(BIN)/nbdev-export
	$(BIN)/nbdev-clean
	@if [ -n "$$(git status --porcelain -- hierlm nbs)" ]; then git status --short -- hierlm nbs; \
	  echo "nbdev-export / nbdev-clean changed the files above: run them and commit"; exit 1; fi

clean-venv:
	rm -rf $(VENV)
