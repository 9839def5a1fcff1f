# Two commands: `make demo` and `make test`. Both create .venv and install
# everything on a fresh machine; the install re-runs only when its inputs change.
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
DEMO_HOME ?= $(CURDIR)/.tastebud-demo
export HF_HUB_OFFLINE := 1
export TRANSFORMERS_OFFLINE := 1
export ANONYMIZED_TELEMETRY := False
# llama-cpp-python compiles from source; the multimodal tools are not needed.
export CMAKE_ARGS ?= -DLLAVA_BUILD=OFF

.PHONY: install demo test test-fast bench clean

install: $(STAMP)

$(BIN)/python:
	@command -v $(PYTHON) >/dev/null 2>&1 || { echo "error: $(PYTHON) not found (tastebud needs Python 3.11)"; exit 1; }
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(STAMP): $(BIN)/python pyproject.toml constraints.txt
	# torch first and pinned: the CPU build comes from local disk, anything else pulls CUDA.
	$(BIN)/pip install --quiet -c constraints.txt torch==2.13.0
	$(BIN)/pip install --quiet -c constraints.txt -e ".[embedded,dev]"
	@touch $(STAMP)

demo: install
	TASTEBUD_HOME=$(DEMO_HOME) bash scripts/demo.sh

test: install
	$(BIN)/python -m pytest -q

test-fast: install
	$(BIN)/python -m pytest -q -m "not llm and not slow and not stack"

bench: install
	$(BIN)/python bench/ingest.py
	$(BIN)/python bench/refresh.py
	$(BIN)/python bench/baselines.py
	$(BIN)/python bench/recommend.py
	$(BIN)/python bench/serve.py --seconds 60

clean:
	rm -rf $(VENV) $(DEMO_HOME) .pytest_cache .hypothesis
