# The two commands of the README: `make demo` and `make test`. Each creates the
# environment it needs first, so a fresh clone needs nothing but Python 3.10+ and make.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin

.PHONY: demo test test-redis5 lint pytest bench conformance clean

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	# Two wrapper libraries the classification tests replay, without their declared caps
	# (instructor: jiter<0.15, rich<15; langchain-groq: groq<1), which would hold the
	# SDKs back from the versions tested here; they run with them, as the tests show.
	$(BIN)/python -m pip install --quiet --no-deps 'instructor==1.17.0' 'langchain-groq==1.1.3'
	touch $@

demo: $(VENV)/.installed
	$(BIN)/byok-tasks demo

test: lint pytest

lint: $(VENV)/.installed
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

# sentry-sdk 3.0, beside the venv and not in it: the test that byok_tasks.sentry refuses it
# at import (tests/sentry/test_sentry_sdk_versions.py) imports it from there.
SENTRY3 := $(VENV)/sentry-sdk-3

$(SENTRY3)/.installed: $(VENV)/.installed
	$(BIN)/python -m pip install --quiet --no-deps --upgrade --target $(SENTRY3) 'sentry-sdk==3.0.0'
	touch $@

# The suite mostly waits on worker processes and brokers: four at a time, a file each.
pytest: $(VENV)/.installed $(SENTRY3)/.installed
	$(BIN)/pytest -n 4 --dist loadfile

# The frameworks' own suites, with and without byok-tasks (CONTRIBUTING.md), in a venv of
# their own: their pins are theirs, not the project's.
CONFORMANCE_VENV ?= .venv-conformance
$(CONFORMANCE_VENV)/.installed: pyproject.toml conformance/requirements.txt
	$(PYTHON) -m venv $(CONFORMANCE_VENV)
	$(CONFORMANCE_VENV)/bin/python -m pip install --quiet --upgrade pip
	$(CONFORMANCE_VENV)/bin/python -m pip install --quiet -e '.[celery,rq,sentry,keys,langchain]' -r conformance/requirements.txt
	touch $@

# Every suite, in CI too; one or a few on demand: `make conformance SUITES="rq sentry-openai"`.
SUITES ?= celery rq sentry-celery sentry-rq sentry-openai sentry-anthropic sentry-langchain
conformance: $(CONFORMANCE_VENV)/.installed
	$(CONFORMANCE_VENV)/bin/python conformance/run.py $(SUITES)

# The lowest redis-py the `keys` extra allows (redis>=5), whose timeouts and retries
# differ from the latest: the key-store and fault tests run against it in a venv of their own.
# 5.0.0 itself, the floor of redis>=5; with kombu[redis], so that pip also takes the kombu
# (and rq) whose Redis support still accepts it, as such a user's pip would: kombu 5.7's
# Redis transport refuses redis-py below 6.1 at run time without saying so to pip.
REDIS5_VENV ?= .venv-redis5
REDIS5 ?= 5.0.0

$(REDIS5_VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(REDIS5_VENV)
	$(REDIS5_VENV)/bin/python -m pip install --quiet --upgrade pip
	$(REDIS5_VENV)/bin/python -m pip install --quiet -e '.[test]' 'redis==$(REDIS5)' 'kombu[redis]'
	touch $@

test-redis5: $(REDIS5_VENV)/.installed
	$(REDIS5_VENV)/bin/python -c 'import kombu, redis; print("redis-py", redis.__version__, "kombu", kombu.__version__)'
	$(REDIS5_VENV)/bin/pytest -n 2 --dist loadfile tests/keys/test_store_failures.py tests/health/test_store_bound.py tests/faults

bench: $(VENV)/.installed
	$(BIN)/python benchmarks/run.py

clean:
	rm -rf $(VENV) $(CONFORMANCE_VENV) $(REDIS5_VENV) build .pytest_cache .mypy_cache .ruff_cache
