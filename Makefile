# The two commands of the README. Both build a virtual environment in .venv with only a system Python.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
MAPPINGS ?= mappings/
ARGS ?=

.PHONY: run demo test lint bench clean

# pip -qq: errors only (no notices about this machine's package mirrors, no setuptools editable-install notes).
$(BIN)/wlmap: pyproject.toml
	@echo "Installing wlmap into $(VENV) (once; about a minute)..."
	@$(PYTHON) -m venv $(VENV)
	@$(BIN)/pip install -qq --upgrade pip
	@$(BIN)/pip install -qq -e .
	@touch $@

$(VENV)/.test-deps: $(BIN)/wlmap
	@echo "Installing the test tools into $(VENV)..."
	@$(BIN)/pip install -qq -e '.[test]'
	@touch $@

# Install and start the listener on the embedded SQLite store (wlmap.db). The mappings are checked as it starts;
# with no WLMAP_WEBHOOK_SECRETS a secret is made once and kept in .wlmap-secret.
run: $(BIN)/wlmap
	@$(BIN)/wlmap run --serve $(MAPPINGS) --store wlmap.db $(ARGS)

# The shipped mappings end to end against fake systems on 127.0.0.1 (store: demo.db, made anew each time).
demo: $(BIN)/wlmap
	@$(BIN)/wlmap demo

# Install the test dependencies and run the whole suite (lint, types, mapping tests, pytest).
test: $(VENV)/.test-deps
	$(BIN)/ruff check mapper tests bench
	$(BIN)/ruff format --check mapper tests bench
	$(BIN)/mypy
	$(BIN)/lint-imports
	$(BIN)/wlmap validate $(MAPPINGS)
	$(BIN)/wlmap test $(MAPPINGS)
	$(BIN)/pytest

bench: $(BIN)/wlmap
	for b in bench/startup.py bench/evaluate.py bench/run_inprocess.py bench/client_stack.py bench/growth.py \
		bench/service_load.py bench/wake_latency.py bench/collect_load.py; do \
		$(BIN)/python $$b || exit 1; done
	$(BIN)/python bench/store_growth.py --events 100000
	$(BIN)/python bench/soak.py --seconds 120
	@echo 'PostgreSQL scale-out (needs WLMAP_TEST_POSTGRES): $(BIN)/python bench/postgres_scale.py'
	@echo 'Idle worker wake-up, LISTEN/NOTIFY vs polling (needs WLMAP_TEST_POSTGRES): $(BIN)/python bench/pg_idle_latency.py'
	@echo 'Ack latency while pruning 2 x 1.5 M rows (~8 min, ~1 GB of disk): $(BIN)/python bench/prune_load.py'
	@echo 'The console events page at 1 M jobs (~2 min, ~0.7 GB of disk): $(BIN)/python bench/events_page.py'
	@echo 'Acks and claims at 1 M finished events (~2½ min, ~0.9 GB of disk): $(BIN)/python bench/store_growth.py'
	@echo 'RSS over the documented 10-minute soak at 200 webhooks/s: $(BIN)/python bench/soak.py'

clean:
	rm -rf $(VENV) build *.egg-info
