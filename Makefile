# sdgs — one obvious command per job. `make help` lists them.
PYTHON ?= python
PIP ?= $(PYTHON) -m pip
# The CPU wheel on machines without CUDA (pip resolves the local/CPU build); the matching CUDA wheel
# where CUDA is present (PyPI's default Linux wheel). Override: make install TORCH_SPEC="torch==2.13.0+cu126 --index-url ..."
TORCH_SPEC ?= torch==2.13.0
PYTEST_ARGS ?=

.PHONY: help install test test-fast lint format bench bench-data bench-render bench-splat bench-splat-real bench-train reproduce-table quickstart-ckpt synth clean

help:  ## list the targets
	@grep -E '^[a-zA-Z_-]+:.*?## ' $(MAKEFILE_LIST) | awk 'BEGIN {FS = ":.*?## "}; {printf "  %-18s %s\n", $$1, $$2}'

install:  ## install torch (pinned first, so nothing pulls a multi-GB build) and sdgs with dev extras
	$(PIP) install $(TORCH_SPEC)
	$(PIP) install -e ".[dev]"

test:  ## run the test suite (CPU; CUDA tests skip themselves)
	$(PYTHON) -m pytest -q $(PYTEST_ARGS)

test-fast:  ## unit tests only (skip the slow end-to-end runs)
	$(PYTHON) -m pytest -q -m "not slow" $(PYTEST_ARGS)

lint:  ## ruff check + format check
	$(PYTHON) -m ruff check sdgs datamodules tests bench docs
	$(PYTHON) -m ruff format --check sdgs datamodules tests bench docs

format:  ## apply ruff fixes and formatting
	$(PYTHON) -m ruff check --fix sdgs datamodules tests bench
	$(PYTHON) -m ruff format sdgs datamodules tests bench

bench: bench-data bench-render bench-splat  ## all benchmarks (JSON under bench/)

bench-data:  ## data loading / synthesis throughput -> bench/data.json
	$(PYTHON) -m bench.data --out bench/data.json

bench-render:  ## renderer speed and memory vs the naive reference -> bench/render.json
	$(PYTHON) -m bench.render --out bench/render.json

bench-splat:  ## splatting-stage depth quality and seconds per scene -> bench/splat.json
	$(PYTHON) -m bench.splat --out bench/splat.json

bench-splat-real:  ## splatting stage on real textures (DFD-indoor; data dir from SDGS_DFD_INDOOR_DIR) -> bench/splat_real.json, docs/splat_real.png
	$(PYTHON) -m bench.splat_real --out bench/splat_real.json

bench-train:  ## quickstart quality bar (self-sup vs supervised vs constant) -> bench/quickstart.json
	$(PYTHON) -m bench.train --out bench/quickstart.json

reproduce-table:  ## train/test every experiment of lightning_configs/table.yaml -> results/table.{md,json} (FORCE=1 reruns)
	$(PYTHON) -m sdgs.report --experiments lightning_configs/table.yaml --out results

quickstart-ckpt:  ## train the quickstart model and copy it to checkpoints/quickstart.ckpt (for sdgs predict)
	sdgs fit --config lightning_configs/quickstart.yaml
	mkdir -p checkpoints && cp runs/quickstart/checkpoints/last.ckpt checkpoints/quickstart.ckpt
	@echo "try: sdgs predict --ckpt_path checkpoints/quickstart.ckpt --input data/procedural/000000_02All.tif --focus-distance 0.3 --out predictions"

synth:  ## write a small procedural dataset in FoD500 format to data/procedural
	sdgs synth --out data/procedural --scenes 64 --size 128

clean:  ## remove caches and run folders (never data/)
	rm -rf .pytest_cache .ruff_cache runs cache
