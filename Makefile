# Tessera: `make run` starts everything, `make test` tests everything.
# Needs only Python 3.11+ and make; the first run installs what it needs into .venv.

PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
UV := $(VENV)/bin/uv
UV_VERSION := 0.13.9
STAMP := $(VENV)/.installed

.PHONY: run test test-fast bench chaos chaos-replicas fuzz install pins catalogue clean-data browser

$(PY):
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check uv==$(UV_VERSION)

$(STAMP): $(PY) constraints.txt requirements-dev.in $(wildcard libs/*/pyproject.toml services/*/pyproject.toml)
	$(UV) pip install --quiet --python $(PY) -c constraints.txt -r requirements-dev.in
	touch $(STAMP)

install: $(STAMP)

run: install
	$(PY) -m tessera_devstack.run $(RUN_ARGS)

test: install browser
	$(PY) -m pytest $(PYTEST_ARGS)

# The browser tests drive Debian's Chromium (never a browser build downloaded by playwright).
# A fresh CI machine has none: install it when we are root with apt-get; otherwise those
# tests skip and say why.
browser:
	@if [ ! -x /usr/bin/chromium ] && [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	  { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; } \
	  || echo "chromium could not be installed: the browser tests will skip"; \
	fi

bench: install
	$(PY) -m tessera_bench $(BENCH_ARGS)

# Load while each service, nats-server and PostgreSQL is killed (SIGKILL) and restarted in turn;
# prints a table and fails when anything was lost, applied twice, or answered other than 503.
chaos: install
	$(PY) -m tessera_bench.chaos $(CHAOS_ARGS)

# Two replicas of every service behind the gateway under load while one replica of each is
# killed (SIGKILL) and restarted in turn: only requests in flight on it may fail, no event is
# lost or applied twice, the outbox relays and timed jobs have one leader at a time.
chaos-replicas: install
	$(PY) -m tessera_bench.chaos.replicas $(CHAOS_ARGS)

# The long schema fuzz run (`make test` runs a bounded one): schemathesis against the whole
# stack's /api/swagger.json, FUZZ_EXAMPLES per operation in every phase; prints its table.
FUZZ_EXAMPLES ?= 60
fuzz: install
	TESSERA_FUZZ_EXAMPLES=$(FUZZ_EXAMPLES) $(PY) -m pytest tests/e2e/test_schema_fuzz.py -s -p no:cacheprovider $(PYTEST_ARGS)

# Re-pin every dependency (after changing a pyproject.toml).
pins: $(PY)
	{ echo "# Pinned versions of every package the workspace installs (regenerate: make pins)."; \
	  $(UV) pip compile --quiet --python $(PY) --no-header --no-annotate requirements-dev.in | grep -v '^-e'; } > constraints.txt.new
	mv constraints.txt.new constraints.txt

# Freeze the schemas of newly added event versions.
catalogue: install
	$(PY) -m tessera_events.snapshot

clean-data:
	rm -rf .tessera
