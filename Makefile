# One entry point for a fresh machine: `make test` (tests) and `make reproduce` (main job).
# Both create .venv and install the pinned dependencies first; that step is a no-op when
# .venv is already up to date with pyproject.toml.
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed
PROFILE ?= quick

.PHONY: venv test reproduce bench clean-venv

$(STAMP): pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check -e '.[book,test]'
	@touch $(STAMP)

venv: $(STAMP)

test: $(STAMP)
	$(PY) -m pytest -q

# Until the reproduction pipeline lands (issue 5) the main job runs what exists: the vMF benchmark.
reproduce: $(STAMP)
	$(PY) -m vmflib bench vmf

bench: $(STAMP)
	$(PY) -m vmflib bench vmf

clean-venv:
	rm -rf $(VENV)
