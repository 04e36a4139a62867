# Two commands do everything on a fresh machine: `make demo` and `make test`.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp

.PHONY: install demo test lint bench clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)

demo: install
	YOLO_OFFLINE=1 $(BIN)/stagerun demo

# Two pytest processes share the suite, a test file each at a time (a file's module fixtures stay in one process);
# schemathesis' generated tests collapse into one under pytest-xdist, so that file runs on its own after.
TEST_WORKERS ?= 2

test: install
	$(BIN)/ruff check .
	YOLO_OFFLINE=1 $(BIN)/pytest -n $(TEST_WORKERS) --dist loadfile --ignore=tests/api/test_schemathesis.py
	YOLO_OFFLINE=1 $(BIN)/pytest tests/api/test_schemathesis.py

lint: install
	$(BIN)/ruff check .

bench: install
	YOLO_OFFLINE=1 $(BIN)/python bench/runner_overhead.py
	YOLO_OFFLINE=1 $(BIN)/python bench/submit_latency.py
	YOLO_OFFLINE=1 $(BIN)/python bench/api_throughput.py
	YOLO_OFFLINE=1 $(BIN)/python bench/faults.py

clean:
	rm -rf var .pytest_cache
