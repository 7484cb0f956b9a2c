# The two commands of the README: `make demo` and `make test`. Each creates the
# environment it needs first, so a fresh clone needs nothing but Python 3.10+ and make.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin

.PHONY: demo test lint pytest bench conformance clean

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $@

demo: $(VENV)/.installed
	$(BIN)/byok-tasks demo

test: lint pytest

lint: $(VENV)/.installed
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

# The suite mostly waits on worker processes and brokers: four at a time, a file each.
pytest: $(VENV)/.installed
	$(BIN)/pytest -n 4 --dist loadfile

# The frameworks' own suites, with and without byok-tasks (CONTRIBUTING.md), in a venv of
# their own: their pins are theirs, not the project's.
CONFORMANCE_VENV ?= .venv-conformance
$(CONFORMANCE_VENV)/.installed: pyproject.toml conformance/requirements.txt
	$(PYTHON) -m venv $(CONFORMANCE_VENV)
	$(CONFORMANCE_VENV)/bin/python -m pip install --quiet --upgrade pip
	$(CONFORMANCE_VENV)/bin/python -m pip install --quiet -e '.[celery,rq,sentry,keys,langchain]' -r conformance/requirements.txt
	touch $@

conformance: $(CONFORMANCE_VENV)/.installed
	$(CONFORMANCE_VENV)/bin/python conformance/run.py

bench: $(VENV)/.installed
	$(BIN)/python benchmarks/run.py

clean:
	rm -rf $(VENV) $(CONFORMANCE_VENV) build .pytest_cache .mypy_cache .ruff_cache
