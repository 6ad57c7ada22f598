# Tollgate: `make run` serves the gateway, `make test` runs the suite (SQLite, then PostgreSQL).
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
PORT ?= 8000
# The ASGI server the bench measured fastest with working WebSockets (README, "Performance").
SERVER ?= uvicorn
ifeq ($(SERVER),uvicorn)
# As `manage.py serve` runs it: the app reads X-Forwarded-* itself (gateway/proxies.py), so uvicorn's
# own rewriting of the client's address from them is off, and no Server header.
SERVE = $(VENV)/bin/uvicorn gateway.asgi:application --host 127.0.0.1 --port $(PORT) --workers 1 \
	--loop uvloop --http httptools --ws websockets-sansio --no-access-log --no-proxy-headers --no-server-header
else ifeq ($(SERVER),granian)
SERVE = $(VENV)/bin/granian --interface asgi --host 127.0.0.1 --port $(PORT) --workers 1 --loop uvloop --ws \
	gateway.asgi:application
else
SERVE = $(VENV)/bin/daphne -b 127.0.0.1 -p $(PORT) gateway.asgi:application
endif

.PHONY: run serve migrate test test-sqlite test-postgres test-clients bench profile lint install

$(VENV)/.installed: pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip 2>&1 | grep -v "is ignored" || true
	$(PY) -m pip install --quiet -e '.[dev]' 2>&1 | grep -v -e "is ignored" -e "Editable" -e "^ *\*\+$$" -e "^ *!!$$" -e "^ *$$" -e "with strategy" -e "Please be careful" -e "name as your package" || true
	$(PY) -c "import django, granian, openai" && touch $@

install: $(VENV)/.installed

run: $(VENV)/.installed
	$(PY) manage.py migrate --noinput -v0
	$(PY) manage.py bootstrap
	$(PY) manage.py collectstatic --noinput -v0
	@echo
	@echo "Tollgate is starting on http://127.0.0.1:$(PORT)"
	@echo "  API (OpenAI-compatible): http://127.0.0.1:$(PORT)/v1   (try model demo/echo)"
	@echo "  Admin:                   http://127.0.0.1:$(PORT)/admin/  (create a user: $(PY) manage.py createsuperuser)"
	@echo "  A tenant and a key:      $(PY) manage.py create_tenant acme --plan pro --owner-email you@example.com"
	@echo "                           $(PY) manage.py create_api_key acme --name laptop"
	@echo
	@# The server and the background work (manage.py run_background: video jobs, periodic jobs)
	@# run side by side: Ctrl-C, or either one exiting, stops both.
	@$(PY) manage.py run_background & worker=$$!; \
	$(SERVE) & server=$$!; \
	trap 'kill -TERM $$worker $$server 2>/dev/null' INT TERM; \
	wait -n $$worker $$server; status=$$?; \
	kill -TERM $$worker $$server 2>/dev/null; wait $$worker $$server; exit $$status

# Production (README, "Production"): `make migrate` once per release, then `make serve` (WORKERS
# processes on HOST:PORT) and `$(PY) manage.py run_background` beside it.
migrate: $(VENV)/.installed
	$(PY) manage.py migrate --noinput
	$(PY) manage.py bootstrap
	$(PY) manage.py collectstatic --noinput -v0

serve: $(VENV)/.installed
	$(PY) manage.py serve

test: $(VENV)/.installed test-sqlite test-postgres test-clients

test-sqlite: $(VENV)/.installed
	tests/ensure_redis.sh
	tests/ensure_chromium.sh
	$(PY) -m pytest -n auto --ignore=tests/clients

# Starts a throwaway PostgreSQL cluster from the machine's packages (installed if missing).
test-postgres: $(VENV)/.installed
	tests/ensure_redis.sh
	tests/ensure_chromium.sh
	tests/with_postgres.sh $(PY) -m pytest -n auto --ignore=tests/clients

# Real clients at pinned versions (tests/clients/: the SDKs, LiteLLM, LangChain, the Agents SDK, the
# Vercel AI SDK, `claude -p`, `codex exec`) against the gateway with fake providers. Once, on SQLite:
# they test the /v1 protocols, not the database. Installs Node and the clients when missing.
test-clients: $(VENV)/.installed
	tests/ensure_clients.sh
	$(PY) -m pytest tests/clients

bench: $(VENV)/.installed
	$(PY) -m bench.run
	$(PY) -m bench.cpu
	$(PY) -m bench.cache_hits

# A flame graph of the gateway under the bench's load (py-spy), in bench/profile.svg (git-ignored).
profile: $(VENV)/.installed
	$(PY) -m bench.profile

lint: $(VENV)/.installed
	$(VENV)/bin/ruff check .
