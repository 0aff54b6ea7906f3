# daojia — two commands for a fresh machine: `make demo` and `make test`.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
UV := $(VENV)/bin/uv
UV_VERSION := 0.13.9

.PHONY: demo test lint typecheck pytest install provision bench lock clean

$(VENV)/.installed: pyproject.toml requirements.lock
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --disable-pip-version-check uv==$(UV_VERSION)
	$(UV) pip install -q -p $(PY) -r requirements.lock
	$(UV) pip install -q -p $(PY) --no-deps -e .
	@touch $@

install: $(VENV)/.installed

provision: install
	bash scripts/provision.sh

demo: install
	$(VENV)/bin/daojia demo

lint: install
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check geo dispatch
	$(VENV)/bin/mypy
	$(VENV)/bin/lint-imports --no-cache  # the layer contracts in pyproject.toml

pytest: install
	@set +e; $(PY) -m pytest -n 2 --dist loadgroup $(PYTEST_ARGS); rc=$$?; \
	if [ $$rc -eq 5 ]; then echo "pytest collected no tests: failing on purpose"; exit 1; fi; exit $$rc

test: install provision lint pytest

bench: install
	$(VENV)/bin/daojia bench list

# Re-resolve the pinned dependency set after editing pyproject.toml.
lock:
	$(UV) pip compile pyproject.toml --extra dev --python-version 3.11 -o requirements.lock

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache .hypothesis build *.egg-info
