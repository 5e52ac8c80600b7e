# Recording Cache: `make run` starts the whole stack, `make test` tests it.
VENV ?= .venv
PYTHON ?= python3
PY := $(VENV)/bin/python
export PATH := $(abspath $(VENV))/bin:$(PATH)

.PHONY: run test test-fast bench call lint install install-dev clean

run: install ## start every process in the foreground (demo mode without Twilio credentials)
	$(PY) -m stack.run

test: install-dev ## the whole suite: unit, end to end, faults, browser
	$(PY) -m pytest

test-fast: install-dev ## unit tests only (fakeredis and a throwaway redis-server)
	$(PY) -m pytest -m "not e2e and not faults and not browser"

bench: install-dev ## measurements against their anchors; writes bench/results/latest.md
	bash scripts/install-system-packages.sh wrk curl radosgw ceph-mon ceph-osd ceph-common libnginx-mod-http-js
	$(PY) -m bench.run

call: install ## demo: the simulator places a call and posts Twilio's signed callbacks
	$(PY) -m stack.call $(ARGS)

lint: install-dev
	$(VENV)/bin/ruff check .

install: $(VENV)/.installed
install-dev: $(VENV)/.installed-dev

$(VENV)/.installed: requirements.txt pyproject.toml package.json package-lock.json scripts/install-system-packages.sh
	bash scripts/install-system-packages.sh
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --disable-pip-version-check -r requirements.txt
	$(PY) -m pip install -q --disable-pip-version-check --no-deps -e .
	@# the demo page's wavesurfer.js: pinned by package-lock.json, served by the service itself
	@command -v npm >/dev/null 2>&1 || { echo "recording-cache: npm not found: install Node.js and npm (apt-get install npm), then run make again" >&2; exit 1; }
	npm ci --no-audit --no-fund
	touch $@

$(VENV)/.installed-dev: $(VENV)/.installed requirements-dev.txt
	$(PY) -m pip install -q --disable-pip-version-check -r requirements-dev.txt
	touch $@

clean: ## remove the runtime folder (keeps recordings under data/)
	rm -rf run .pytest_cache
