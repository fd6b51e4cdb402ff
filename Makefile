# The two commands: `make demo` and `make test`. Both create .venv and install.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
DEMO_DIR ?= artifacts/demo

.PHONY: install demo test bench lint format clean

# PyTorch (tests and benchmarks run the official reference code with it): one
# known build first, so that the `convert`/`bench` range does not pull the
# newest CUDA wheel. Override with e.g. TORCH='torch --index-url
# https://download.pytorch.org/whl/cpu'.
TORCH ?= torch==2.13.0

$(STAMP): pyproject.toml
	rm -rf $(VENV)
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet $(TORCH)
	$(BIN)/python -m pip install --quiet -e ".[dev,convert,bench,deploy]"
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(BIN)/python scripts/demo.py --output $(DEMO_DIR)

# Two processes: the suite is mostly single-threaded graph tracing (see
# tests/conftest.py for how the tests are grouped). A worker that crashes (a
# native abort in TensorFlow) ends the run as a failure naming its test: with
# the default restarts and `--dist loadgroup`, the run waited forever instead.
test: $(STAMP)
	$(BIN)/python -m pytest -q -n 2 --dist loadgroup --no-loadscope-reorder --max-worker-restart=0

bench: $(STAMP)
	$(BIN)/python benchmarks/corner_pool.py
	$(BIN)/python benchmarks/data_pipeline.py
	$(BIN)/python benchmarks/decode.py
	$(BIN)/python benchmarks/model_build.py
	$(BIN)/python benchmarks/model_throughput.py
	$(BIN)/python benchmarks/predict.py
	$(BIN)/python benchmarks/tflite.py
	$(BIN)/python benchmarks/deploy_latency.py
	$(BIN)/python benchmarks/precision.py

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: $(STAMP)
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

clean:
	rm -rf $(VENV) artifacts .pytest_cache .ruff_cache
