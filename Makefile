# pg_recall: one command for the demo, one for the tests. Both bootstrap the machine first
# (idempotently: a second run only verifies what the first installed).
SHELL := /bin/bash
export PATH := $(HOME)/.cargo/bin:$(PATH)
# Build outputs are cached outside the clone so a fresh clone (CI) reuses earlier builds.
export CARGO_TARGET_DIR ?= $(HOME)/.cache/pg_recall/target

PG_CONFIG := /usr/bin/pg_config
VENV := $(HOME)/.cache/pg_recall/venv
PY := $(VENV)/bin/python
STATE := /var/tmp/pg_recall
PGRX_TEST_DATA := $(STATE)/pgrx-test
TEST_CLUSTER := $(STATE)/test-cluster

.PHONY: demo test stop bootstrap install install-debug test-core test-pg test-client bench-core bench bench-compare bench-intent

bootstrap:
	@bash scripts/bootstrap.sh
	@install -d -o postgres -g postgres $(STATE)

## The demo: build and install (release), start the private cluster, load fashion-mnist,
## print recall and latency; then the recall funnel on MovieLens-100k (train, load, embed,
## index, serve every user, Recall@K table).
demo: bootstrap install
	@bash scripts/cluster.sh start
	$(PY) benches/demo.py --url "$$(bash scripts/cluster.sh url)"
	cargo build --release -p recall-train
	$(PY) benches/funnel.py --url "$$(bash scripts/cluster.sh url)" --trainer "$(CARGO_TARGET_DIR)/release/pg_recall-train"

install:
	cargo pgrx install --release --pg-config $(PG_CONFIG)

## Stops the demo cluster (its data stays in $(STATE)/demo).
stop:
	@bash scripts/cluster.sh stop

## Everything in the suite.
test: bootstrap test-core test-pg test-client
	@echo "all test suites passed"

test-core:
	cargo test -p recall-core -p recall-train

test-pg:
	cargo pgrx test pg15 --runas postgres --pgdata $(PGRX_TEST_DATA)

install-debug:
	cargo pgrx install --pg-config $(PG_CONFIG)

test-client: install-debug
	PG_RECALL_DATA=$(TEST_CLUSTER) bash scripts/cluster.sh start
	PG_RECALL_URL="$$(PG_RECALL_DATA=$(TEST_CLUSTER) bash scripts/cluster.sh url)" \
	  $(PY) -m pytest -q -s tests/client tests/integration; rc=$$?; \
	  PG_RECALL_DATA=$(TEST_CLUSTER) bash scripts/cluster.sh stop; exit $$rc

bench-core:
	cargo bench -p recall-core --bench distance --bench tower

## The SQL benchmark runner: fashion-mnist and a synthetic 1M × 128 inner-product set,
## results in bench-results/*.json and *.png. BENCH_ARGS="--datasets fashion-mnist" to narrow.
bench: bootstrap install
	@bash scripts/cluster.sh start
	$(PY) benches/bench.py --url "$$(bash scripts/cluster.sh url)" $(BENCH_ARGS)

## The same runner on pg_recall and on pgvector 0.8.0 (scripts/pgvector.sh installs it), one
## after the other on the same cluster, so the ratios come from one run on one host.
bench-compare: bootstrap install
	@bash scripts/pgvector.sh
	@bash scripts/cluster.sh start
	$(PY) benches/bench.py --url "$$(bash scripts/cluster.sh url)" --engines pg_recall,pgvector $(BENCH_ARGS)

## What optimized_for / target_recall / recall.tune deliver on held-out queries, against the
## cheapest hand-tuned setting (benches/intent.py); results in bench-results/intent-*.json.
bench-intent: bootstrap install
	@bash scripts/cluster.sh start
	$(PY) benches/intent.py --url "$$(bash scripts/cluster.sh url)" $(BENCH_ARGS)
