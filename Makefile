# Fresh clone, two commands: `make run` (the seed example end to end) and `make test`.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
SCALE ?= 1
FUZZ_SECONDS ?= 120

.PHONY: setup run test lint bench fuzz templates clean

setup: $(VENV)/.installed node_modules/.installed

$(VENV)/.installed: requirements.txt requirements-dev.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check -r requirements.txt -r requirements-dev.txt
	touch $@

node_modules/.installed: package.json package-lock.json
	npm ci --no-audit --no-fund --loglevel=error
	touch $@

run: setup
	$(PY) scripts/run_sample.py

test: setup
	$(VENV)/bin/ruff check .
	$(PY) -m pytest -n 2 --dist loadfile

lint: setup
	$(VENV)/bin/ruff check .

bench: setup
	$(PY) -m bench --scale $(SCALE)

fuzz: setup
	$(PY) bench/fuzz.py --seconds $(FUZZ_SECONDS)

templates: setup
	$(PY) -m invoicing.workbook.template

clean:
	rm -rf $(VENV) node_modules out .pytest_cache .hypothesis
