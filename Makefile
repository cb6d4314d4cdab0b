# One entry point for a fresh machine: `make test` (tests) and `make reproduce` (main job).
# Both create .venv and install the pinned dependencies first; that step is a no-op when
# .venv is already up to date with pyproject.toml.
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed
PROFILE ?= quick
JOBS    ?= 2

.PHONY: venv test lint reproduce bench clean-venv

$(STAMP): pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check -e '.[book,test]'
	@touch $(STAMP)

venv: $(STAMP)

test: $(STAMP) lint
	$(PY) -m pytest -q

# ruff: formatting and lint (configured in pyproject.toml), on the whole tree.
lint: $(STAMP)
	$(PY) -m ruff format --check --quiet .
	$(PY) -m ruff check --quiet .

# The main job: every notebook of the profile through papermill, then the book.
reproduce: $(STAMP)
	$(PY) -m vmflib reproduce --profile $(PROFILE) --jobs $(JOBS)

bench: $(STAMP)
	$(PY) -m vmflib bench vmf

clean-venv:
	rm -rf $(VENV)
