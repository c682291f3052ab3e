# hwlenet: `make demo` runs the main flow on the shipped model, `make test` runs the whole suite.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# The MNIST folder: $(DATA), else $HWLENET_DATA, else ../shared/datasets/mnist when it exists.
# When none is there, hwlenet itself falls back on the per-user cache (~/.cache/hwlenet/mnist,
# downloaded when a network is there) and then on the sample embedded in the package.
DATA ?= $(or $(HWLENET_DATA),$(abspath $(wildcard ../shared/datasets/mnist)))
DATA_OPTION := $(if $(DATA),--data-dir $(DATA))
DEMO := demo

.PHONY: venv demo test tools clean

venv: $(STAMP) tools

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -c "import torch" 2>/dev/null || $(BIN)/pip install torch==2.13.0
	$(BIN)/pip install -e '.[dev]'
	touch $(STAMP)

# Verilator, Icarus Verilog, GTKWave (fst2vcd, to read Verilator's waveforms), Chromium (the
# headless browser that tests the HTML report) and ccache (exported benches compile through it
# when it is there: Verilator's runtime and unchanged designs are not compiled twice) come from
# the system's packages.
tools:
	@missing=""; \
	command -v verilator >/dev/null || missing="$$missing verilator"; \
	command -v ccache >/dev/null || missing="$$missing ccache"; \
	command -v iverilog >/dev/null || missing="$$missing iverilog"; \
	command -v fst2vcd >/dev/null || missing="$$missing gtkwave"; \
	command -v chromium >/dev/null || missing="$$missing chromium"; \
	if [ -n "$$missing" ]; then \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	    apt-get update && apt-get install -y $$missing; \
	  else \
	    echo "hwlenet: missing$$missing; install with: sudo apt-get install -y$$missing" >&2; \
	  fi; \
	fi

demo: venv
	mkdir -p $(DEMO)
	$(BIN)/hwlenet evaluate lenet5-classic $(DATA_OPTION) --json $(DEMO)/evaluate.json
	$(BIN)/hwlenet quantize lenet5-classic --bits 8 $(DATA_OPTION) --out $(DEMO)/q.npz
	$(BIN)/hwlenet simulate $(DEMO)/q.npz $(DATA_OPTION) --json $(DEMO)/simulate.json \
	  --plot $(DEMO)/layers.png
	$(BIN)/hwlenet emit-verilog $(DEMO)/q.npz --out $(DEMO)/rtl --vectors 100 --cover $(DATA_OPTION)
	$(BIN)/hwlenet cosim $(DEMO)/rtl --simulator verilator --jobs 2 --json $(DEMO)/cosim.json
	$(BIN)/python scripts/summary.py $(DEMO)
	$(BIN)/hwlenet report $(DEMO)/rtl --out $(DEMO)/report.html

# The suite runs on every CPU (pytest-xdist), one test file per worker at a time, so that a
# file's shared fixtures (exports, Verilator builds) are built once; TEST_JOBS=1 runs it serially.
TEST_JOBS ?= auto
test: venv
	HWLENET_DATA=$(DATA) $(BIN)/python -m pytest -q --durations=25 \
	  $(if $(filter 1,$(TEST_JOBS)),,-n $(TEST_JOBS) --dist loadfile)

clean:
	rm -rf $(DEMO) .pytest_cache
