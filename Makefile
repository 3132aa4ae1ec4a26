# revwatch: `make run` (install + demo on the embedded store), `make test` (install + whole test suite).
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin

.PHONY: run serve test install install-test prometheus alertmanager chromium bench clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip

install: $(BIN)/python
	$(BIN)/pip install -q -e .

install-test: $(BIN)/python
	$(BIN)/pip install -q -e '.[test]'

# Prometheus + promtool (Debian package) for the rule and alerting tests; skipped when already present.
prometheus:
	@command -v promtool >/dev/null 2>&1 || { \
	  if [ "$$(id -u)" = 0 ]; then (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq prometheus >/dev/null) \
	    || echo "warning: could not install prometheus; its tests will be skipped"; \
	  else echo "warning: not root, cannot apt-get install prometheus; its tests will be skipped"; fi; }

# Alertmanager + amtool (Debian package) for the end-to-end alerting test; skipped when already present.
alertmanager:
	@{ command -v prometheus-alertmanager && command -v amtool; } >/dev/null 2>&1 || { \
	  if [ "$$(id -u)" = 0 ]; then (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq prometheus-alertmanager >/dev/null) \
	    || echo "warning: could not install prometheus-alertmanager; its tests will be skipped"; \
	  else echo "warning: not root, cannot apt-get install prometheus-alertmanager; its tests will be skipped"; fi; }
# Chromium (Debian package) for the web UI browser tests (Playwright drives /usr/bin/chromium; no browser download).
chromium:
	@test -x /usr/bin/chromium || { \
	  if [ "$$(id -u)" = 0 ]; then (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null) \
	    || echo "warning: could not install chromium; the browser tests will be skipped"; \
	  else echo "warning: not root, cannot apt-get install chromium; the browser tests will be skipped"; fi; }

run: install
	$(BIN)/revwatch demo

serve: install
	$(BIN)/revwatch serve --config revwatch/example-config.yaml

test: install-test prometheus alertmanager chromium
	$(BIN)/ruff check . && $(BIN)/lint-imports && $(BIN)/mypy
	$(BIN)/python -m pytest -q tests

bench: install
	$(BIN)/python bench/ingest.py && $(BIN)/python bench/lookup.py && $(BIN)/python bench/slo_eval.py && $(BIN)/python bench/odoo_cursor.py && $(BIN)/python bench/alerts.py && $(BIN)/python bench/ui_overview.py

clean:
	rm -rf $(VENV) .revwatch *.egg-info
