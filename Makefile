# Two commands: `make run` (install + main job) and `make test` (install + tests).
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
MODEL  ?= gpt2
TASK   ?= translation-en-fr
LIMIT  ?=
ARGS   ?=
# The shared WMT14 copy is used when present (the same newstest2014 the hub serves).
SHARED_WMT := ../shared/data/wmt14-en-fr
DATA   ?= $(if $(wildcard $(SHARED_WMT)),$(SHARED_WMT),)

.PHONY: install run test lint bench clean

# Every pin lives in pyproject.toml: this is `pip install torch==2.13.0 && pip install .` (editable,
# plus the test tools), so a user of pip alone gets the same stack.
$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	# torch first: 2.13.0 is a small CPU build; any other resolution pulls a CUDA build.
	$(BIN)/pip install -q torch==2.13.0
	$(BIN)/pip install -q -e ".[test]"
	touch $@

install: $(VENV)/.installed

run: install
	$(BIN)/harness run --task $(TASK) --model $(MODEL) $(if $(DATA),--data-files $(DATA)) $(if $(LIMIT),--limit $(LIMIT)) $(ARGS)

lint: install
	$(BIN)/ruff check harness tasks prompts tests bench

# Two pytest workers, one test file each at a time (module fixtures built once): graph compiles and
# subprocess start-ups are single-threaded, so two workers on two cores cut the wall time by a third.
test: install
	$(BIN)/ruff check harness tasks prompts tests bench
	$(BIN)/pytest -q -n 2 --dist loadfile

# Speed and score agreement against lm-evaluation-harness (docs/bench.md); installs the `bench` extra.
bench: install
	$(BIN)/pip install -q -e ".[test,bench]"
	$(BIN)/python -m bench.run $(BENCH_ARGS)

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache
