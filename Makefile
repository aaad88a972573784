# Two commands for a fresh clone: `make run` (the platform) and `make test` (the tests).
# Each creates .venv and installs into it on first use what it needs: running the platform
# (`run`, `serve`, `worker`, `beat`) only the project; the tests, checks and bench also its
# `dev` extras and the Python client. `make install` installs everything, for developers.

VENV ?= .venv
PY := $(VENV)/bin/python
RUN_STAMP := $(VENV)/.installed-run-stamp
DEV_STAMP := $(VENV)/.installed-dev-stamp
ADDR ?= 127.0.0.1:8000
# Tests always talk to a real PostgreSQL and Redis (the ones on this machine by default).
TEST_DATABASE_URL ?= postgres://root@127.0.0.1:5432/test
TEST_REDIS_URL ?= redis://127.0.0.1:6379/0

.PHONY: install run serve web worker beat test test-pgbouncer check format migrations bench screenshots \
	backup restore cluster cluster-down test-cluster bench-cluster

# What running the platform needs: the project without its dev extras.
$(RUN_STAMP): pyproject.toml
	test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e .
	touch $(RUN_STAMP)

# What developing needs: that, the dev extras (pytest, ruff, mypy, selenium, schemathesis...)
# and the Python client.
$(DEV_STAMP): $(RUN_STAMP) clients/python/pyproject.toml
	$(PY) -m pip install --quiet -e '.[dev]' -e 'clients/python[cli]'
	touch $(DEV_STAMP)

install: $(DEV_STAMP)

# Web, Celery worker and beat together in the foreground (Procfile, run by honcho).
run: $(RUN_STAMP)
	$(PY) manage.py migrate --noinput
	ADDR=$(ADDR) $(VENV)/bin/honcho start -f Procfile

# Each alone, for production: `make serve` (the web tier), `make worker`, `make beat`.
# serve: granian runs thisdb_site.asgi in WEB_WORKERS processes (one per core by default), each
# with at most WEB_THREADS requests inside Django, THISDB_BULK_THREADS (2) exports and imports
# beside them, and a pool of as many PostgreSQL connections as both.
# Headers must arrive within 5 s and bodies within THISDB_BODY_TIMEOUT (30 s) or the connection
# is dropped; a worker is replaced after WEB_WORKER_LIFETIME seconds or WEB_WORKER_MAX_RSS MiB,
# and one that dies is respawned. `kill -HUP` on the main process restarts the workers
# gracefully. Put a buffering proxy in front for the internet (deploy/nginx/thisdb.conf).
WEB_WORKERS ?= $(shell nproc 2>/dev/null || echo 2)
# Two threads per worker: the fastest measured (README, "Database connections").
WEB_THREADS ?= 2
WEB_WORKER_LIFETIME ?= 21600
WEB_WORKER_MAX_RSS ?= 1024
# Watch streams (GET /v1/<bucket>?watch=true) stay open, each holding a connection, a file
# descriptor and one of the worker's slots for requests in progress: granian's --backpressure,
# by default backlog/workers (1,024 with 2 workers), past which every new connection of the
# worker waits in the backlog, normal requests too. So: WEB_MAX_CONNECTIONS slots a worker, and
# the open-files limit raised to the hard one (5,000 streams measured, bench/RESULTS.md).
WEB_MAX_CONNECTIONS ?= 10000
SERVE_APP ?= thisdb_site.asgi:application
# Metrics (THISDB_METRICS_TOKEN): each service's processes keep them in a folder of their own
# under PROMETHEUS_MULTIPROC_DIR (var/metrics by default), emptied when the service starts, so
# that a restart counts from zero and no process of a former run is summed in.
METRICS_DIR ?= $(abspath $(or $(PROMETHEUS_MULTIPROC_DIR),var/metrics))
fresh_metrics = mkdir -p $(1) && rm -f $(1)/*.db
SERVE_HOST = $(word 1,$(subst :, ,$(ADDR)))
SERVE_PORT = $(word 2,$(subst :, ,$(ADDR)))
serve: $(RUN_STAMP)
	$(PY) manage.py migrate --noinput
	$(call fresh_metrics,$(METRICS_DIR)/web)
	ulimit -n "$$(ulimit -Hn)" 2>/dev/null; \
	PROMETHEUS_MULTIPROC_DIR=$(METRICS_DIR)/web THISDB_WEB_THREADS=$(WEB_THREADS) exec $(VENV)/bin/granian $(SERVE_APP) \
		--interface asgi --http 1 --no-ws --host $(SERVE_HOST) --port $(SERVE_PORT) \
		--workers $(WEB_WORKERS) --runtime-threads 1 --backlog 2048 \
		--backpressure $(WEB_MAX_CONNECTIONS) \
		--http1-header-read-timeout 5000 \
		--workers-lifetime $(WEB_WORKER_LIFETIME) --workers-max-rss $(WEB_WORKER_MAX_RSS) \
		--respawn-failed-workers --workers-kill-timeout 30 --log-level warning

# `make web` is `make serve` (the production web tier).
web: serve

# WORKER_ARGS: more of celery worker's options (e.g. --concurrency=2, or `-n worker2@%h` for a
# second worker on a host).
worker: $(RUN_STAMP)
	$(call fresh_metrics,$(METRICS_DIR)/worker)
	PROMETHEUS_MULTIPROC_DIR=$(METRICS_DIR)/worker \
		exec $(VENV)/bin/celery -A thisdb_site worker --loglevel=INFO $(WORKER_ARGS)

BEAT_SCHEDULE ?= var/celerybeat-schedule
beat: $(RUN_STAMP)
	mkdir -p $(dir $(BEAT_SCHEDULE))
	$(VENV)/bin/celery -A thisdb_site beat --loglevel=INFO --schedule=$(BEAT_SCHEDULE)

# A pg_dump file of DATABASE_URL's PostgreSQL database, var/backups/thisdb-<UTC time>.dump; and
# one restored into an empty database, then migrated (docs/operations.md, "Backups").
backup:
	bash deploy/backup/backup.sh

restore: $(RUN_STAMP)
	PYTHON=$(PY) bash deploy/backup/restore.sh "$(FILE)"

test: $(DEV_STAMP)
	DATABASE_URL=$${DATABASE_URL:-$(TEST_DATABASE_URL)} REDIS_URL=$${REDIS_URL:-$(TEST_REDIS_URL)} \
		$(PY) -m pytest $(ARGS)

# The API's core tests through PgBouncer in transaction mode (deploy/cluster/pgbouncer.sh, on a
# free port) with DATABASE_PREPARED_STATEMENTS=false. Their database is made through it and kept
# (--reuse-db: PgBouncer's server connections would refuse its DROP), then dropped once it stops.
PGBOUNCER_UPSTREAM ?= 127.0.0.1:5432
PGBOUNCER_DATABASE ?= pgbouncer
PGBOUNCER_TESTS ?= tests/api/test_transactions.py tests/api/test_increment.py tests/api/test_keys.py
test-pgbouncer: $(DEV_STAMP)
	port=$$($(PY) -c "from tests.serving import free_port; print(free_port())"); \
	dir=$$(mktemp -d); \
	bash deploy/cluster/pgbouncer.sh start $$dir $$port $(PGBOUNCER_UPSTREAM) && \
	DATABASE_PREPARED_STATEMENTS=false DATABASE_TRANSACTION_POOLING=true \
		DATABASE_URL=postgres://root@127.0.0.1:$$port/$(PGBOUNCER_DATABASE) \
		REDIS_URL=$${REDIS_URL:-$(TEST_REDIS_URL)} \
		$(PY) -m pytest --reuse-db --create-db -p no:cacheprovider $(PGBOUNCER_TESTS) $(ARGS); \
	status=$$?; bash deploy/cluster/pgbouncer.sh stop $$dir $$port $(PGBOUNCER_UPSTREAM); \
	dropdb --if-exists -h $(word 1,$(subst :, ,$(PGBOUNCER_UPSTREAM))) \
		-p $(word 2,$(subst :, ,$(PGBOUNCER_UPSTREAM))) -U root test_$(PGBOUNCER_DATABASE); \
	rm -rf $$dir; exit $$status

# The end-to-end browser test, keeping its screenshots of the main pages for the README.
screenshots: $(DEV_STAMP)
	DATABASE_URL=$${DATABASE_URL:-$(TEST_DATABASE_URL)} REDIS_URL=$${REDIS_URL:-$(TEST_REDIS_URL)} \
		THISDB_SCREENSHOTS=docs/screenshots $(PY) -m pytest tests/test_browser.py $(ARGS)

check: $(DEV_STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/mypy --config-file clients/python/pyproject.toml clients/python/src/thisdb
	$(VENV)/bin/mypy api accounts thisdb_site dashboard console bench
	$(PY) manage.py makemigrations --check --dry-run
	$(PY) manage.py check

format: $(DEV_STAMP)
	$(VENV)/bin/ruff check --fix .
	$(VENV)/bin/ruff format .

migrations: $(DEV_STAMP)
	$(PY) manage.py makemigrations accounts api

# The API on the production web tier against its floor (bench/README.md): prints a table and
# writes bench/RESULTS.md. Needs wrk, installed here from Debian when missing (as root).
# ARGS=--quick for a short run.
bench: $(DEV_STAMP)
	command -v wrk >/dev/null || apt-get install -y -q wrk >/dev/null || \
		{ apt-get update -q >/dev/null && apt-get install -y -q wrk >/dev/null; }
	$(PY) bench/bench.py $(ARGS)

# The platform past one machine, simulated on this one (docs/scaling.md): two web nodes behind
# nginx, PgBouncer, PostgreSQL with a synchronous standby under Patroni on etcd, a Redis
# Cluster, Celery on RabbitMQ. Debian's packages are installed when missing (as root); data, logs
# and pid files in var/cluster/. `make cluster-down` stops it all (safe to run twice).
cluster: $(RUN_STAMP)
	bash deploy/cluster/cluster.sh start

cluster-down:
	bash deploy/cluster/cluster.sh stop

# The tests of that topology (tests/cluster/, not part of `make test`): against the running
# one, or else one started here, with the settings the client's online tests need
# (clients/python/README.md), and stopped at the end. ARGS="-m quick": CI's part.
test-cluster: $(DEV_STAMP)
	@if curl -sf -o /dev/null http://127.0.0.1:8100/readyz; then started=; else \
		THISDB_KEY_WRITES_PER_SECOND=0 THISDB_AUTH_FAILURES_RATE=100000/m \
			bash deploy/cluster/cluster.sh start || \
			{ bash deploy/cluster/cluster.sh stop; exit 1; }; started=1; fi; \
	THISDB_CLUSTER_TESTS=true $(PY) -m pytest tests/cluster $(ARGS); status=$$?; \
	if [ -n "$$started" ]; then bash deploy/cluster/cluster.sh stop; fi; exit $$status

# GET and SET through nginx with two web nodes and with one, and PostgreSQL directly against
# PgBouncer, on the running topology (bench/cluster.py; docs/scaling.md has the figures).
bench-cluster: $(DEV_STAMP)
	$(PY) bench/cluster.py $(ARGS)
