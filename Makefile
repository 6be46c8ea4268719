# databacked: `make demo` runs the main job, `make test` runs the whole suite.
# Both create the virtual environment first when it is missing or out of date.

PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: install demo test lint bench soak clean help browser

help:  ## show the targets
	@grep -E '^[a-z]+:.*##' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-8s %s\n", $$1, $$2}'

$(STAMP): pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -c constraints.txt -e '.[all,test]'
	$(BIN)/python -m pip install --quiet -c constraints.txt --no-deps 'roc-validator>=0.7'  # see [test] in pyproject
	$(BIN)/python -m compileall -q src/databacked  # as a wheel install is: no compiling in every process
	touch $(STAMP)

install: $(STAMP)  ## create .venv and install databacked with [all,test]

demo: $(STAMP)  ## generate a small plate and run the example pipeline (run twice: all cached)
	$(BIN)/databacked demo

lint: $(STAMP)  ## ruff (lint and format) and the import-layer contract
	$(BIN)/ruff check src tests benchmarks
	$(BIN)/ruff format --check src tests benchmarks  # `ruff format src tests benchmarks` fixes it
	$(BIN)/lint-imports

browser:  ## Debian's chromium and graphviz for the web UI's browser tests (apt-get, as root, when missing)
	@command -v chromium >/dev/null && command -v dot >/dev/null || \
	  { [ "$$(id -u)" = 0 ] && apt-get update -qq && \
	    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium graphviz >/dev/null; } || \
	  echo "make browser: install chromium and graphviz (apt-get install chromium graphviz) for tests/ui" >&2

test: $(STAMP) lint browser  ## the whole test suite, with real services where configured
	$(BIN)/python -m pytest -n 2 --dist loadgroup

soak: $(STAMP)  ## the whole fault-injection campaign (< 30 min on 2 cores); figures go to RELIABILITY.md
	DATABACKED_SOAK=1 DATABACKED_RELIABILITY_REPORT=RELIABILITY.md \
	DATABACKED_TEST_POSTGRES_URL=$${DATABACKED_TEST_POSTGRES_URL:-postgresql+psycopg://postgres@127.0.0.1:5432/test} \
	DATABACKED_TEST_MYSQL_URL=$${DATABACKED_TEST_MYSQL_URL:-mysql+pymysql://root@127.0.0.1:3306/test} \
	$(BIN)/python -m pytest tests/reliability -q -p no:cacheprovider

# Snakemake (the peer of the spec benchmark) lives in a venv of its own: it pins
# packaging<26, which celery[redis] cannot share.
SNAKE := .venv-snakemake
$(SNAKE)/bin/snakemake:
	$(PYTHON) -m venv $(SNAKE)
	$(SNAKE)/bin/python -m pip install --quiet 'snakemake>=8' numpy imageio  # the Snakefile's rules import them

bench: $(STAMP) $(SNAKE)/bin/snakemake  ## benchmarks; figures go to benchmarks/RESULTS.md
	PATH="$$PATH:$(CURDIR)/$(SNAKE)/bin" $(BIN)/python benchmarks/run.py

clean:  ## remove the virtual environment and caches
	rm -rf $(VENV) .pytest_cache .ruff_cache
