# Developer commands. Everything installs into .venv from the pinned requirements files.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test bench package campaign serve clean

$(STAMP): requirements.txt requirements-dev.txt
	$(PY) -c 'import sys; assert sys.version_info >= (3, 10), "Python 3.10+ is required"'
	$(PY) -m venv $(VENV)
	$(BIN)/python -m pip install -q --disable-pip-version-check -r requirements-dev.txt
	touch $(STAMP)

## demo: run the three official callbacks through main_handler against a local COS server
demo: $(STAMP)
	$(BIN)/python scripts/demo.py

## test: the test suite (what CI runs)
test: $(STAMP)
	$(BIN)/python -m pytest

## serve: the function behind http://127.0.0.1:9001 with a seeded local COS server (POST callbacks with curl)
serve: $(STAMP)
	$(BIN)/python -m handler serve --local-cos --port 9001 --env SMARTCOVER_ACTIONS=move,tag --env 'SMARTCOVER_TARGET_KEY=covers/$${InputName}/$${Number}.$${ext}'

clean:
	rm -rf $(VENV) build .pytest_cache
