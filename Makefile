# Developer commands. Everything installs into .venv from the pinned requirements files.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test lint bench bench-fanout bench-tiers package campaign serve clean

$(STAMP): requirements.txt requirements-dev.txt
	$(PY) -c 'import sys; assert sys.version_info >= (3, 10), "Python 3.10+ is required"'
	$(PY) -m venv $(VENV)
	$(BIN)/python -m pip install -q --disable-pip-version-check -r requirements-dev.txt
	touch $(STAMP)

## demo: run the three official callbacks through main_handler against a local COS server
demo: $(STAMP)
	$(BIN)/python scripts/demo.py

## test: what CI runs: lint (ruff, mypy), then the test suite under branch coverage of handler/smartcover; fails below the coverage floor
# floor 87: branch coverage measured 89.65-89.70% on 2026-12-03 (2 runs, 808 tests, test process only), rounded down, minus 2
test: lint
	$(BIN)/python -m coverage run -m pytest
	$(BIN)/python -m coverage report --fail-under=87

## lint: ruff (E, W, F, B, I, UP) and mypy (strict on handler/smartcover); settings in pyproject.toml
lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/mypy

## bench: round trips, cold start, memory, parse cost and package size against localcos (not run by CI). Exit status: 0 when it ran, missed targets listed as MISSED lines; 1 when a target is missed only with BENCH_ARGS=--strict; anything else non-zero: a crash
bench: $(STAMP)
	$(BIN)/python bench/run.py $(BENCH_ARGS)

## bench-tiers: the function on each SCF memory tier's CPU share (cgroup CPU quota; 64-1024 MB, ours and a naive baseline, 3 runs), cost per million callbacks, docs/tiers.png and docs/tiers.json (TIERS_ARGS="--mb-per-cpu 1024 --runs 1"; TIERS_ARGS=--cpu-only: the CPU budget alone); exits 0 unless a run failed (--strict: 1 when a target is missed)
bench-tiers: $(STAMP)
	$(BIN)/python bench/tiers.py $(TIERS_ARGS)

## bench-fanout: reconcile in one process vs fan-out over LocalSCF with 1/2/4/8 workers, 10,000 jobs of 3 covers at 20 ms (BENCH_ARGS="--jobs 2000")
bench-fanout: $(STAMP)
	$(BIN)/python bench/fanout.py $(BENCH_ARGS)

## package: build/package and build/smartcover-scf.zip for SCF Python 3.10, verified against localcos (PY310=/path/to/python3.10 to compile bytecode)
package: $(STAMP)
	$(BIN)/python scripts/package.py $(if $(PY310),--compile-with $(PY310))

## campaign: a long randomized fault-injection campaign (CAMPAIGN_ARGS="--schedules 10000")
campaign: $(STAMP)
	$(BIN)/python scripts/campaign.py $(CAMPAIGN_ARGS)

## serve: the function behind http://127.0.0.1:9001 with a seeded local COS server (POST callbacks with curl; the callback token is printed at start)
serve: $(STAMP)
	$(BIN)/python -m handler serve --local-cos --port 9001 --env SMARTCOVER_ACTIONS=move,tag \
		--env 'SMARTCOVER_TARGET_KEY=covers/$${InputName}/$${jobid}/$${Number}.$${ext}' \
		--env SMARTCOVER_ALLOWED_BUCKETS=test-123456789 --env SMARTCOVER_ALLOWED_REGIONS=ap-chongqing

clean:
	rm -rf $(VENV) build .pytest_cache .hypothesis .mypy_cache .ruff_cache
