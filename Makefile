# sdgs — one obvious command per job. `make help` lists them.
PYTHON ?= python
PIP ?= $(PYTHON) -m pip
# The CPU wheel on machines without CUDA (pip resolves the local/CPU build); the matching CUDA wheel
# where CUDA is present (PyPI's default Linux wheel). Override: make install TORCH_SPEC="torch==2.13.0+cu126 --index-url ..."
TORCH_SPEC ?= torch==2.13.0
PYTEST_ARGS ?=

.PHONY: help install test test-fast lint format bench bench-quick bench-data bench-cpu-train-speed bench-render bench-splat bench-splat-real bench-confidence bench-predict-stack bench-train bench-train-long bench-texture-error bench-single-image gpu-check bench-gpu-train gpu-session reproduce-table docs quickstart-ckpt real-ckpt bench-real synth clean

help:  ## list the targets
	@grep -E '^[a-zA-Z_-]+:.*?## ' $(MAKEFILE_LIST) | awk 'BEGIN {FS = ":.*?## "}; {printf "  %-18s %s\n", $$1, $$2}'

install:  ## install torch (pinned first, so nothing pulls a multi-GB build) and sdgs with dev extras (incl. triton, nvidia-ml-py)
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
	$(PYTHON) -m ruff check --fix sdgs datamodules tests bench docs
	$(PYTHON) -m ruff format sdgs datamodules tests bench docs

bench: bench-data bench-render bench-splat  ## data, renderer and splatting benchmarks (JSON under bench/)

bench-quick:  ## every headline row at reduced size (<= 20 min, 2 cores), each stage timed: procedural rows at a quarter of the quickstart's budget -> bench/quick.json; with the DFD-indoor data, the real-photo model, its supervised bound and the no-defocus control at a quarter of their steps beside the real baselines -> bench/quick_real.json; stage times -> bench/quick_tier.json
	$(PYTHON) -m bench.quick_tier --data_dir $(DFD_INDOOR_DIR)

bench-data:  ## data loading / synthesis throughput -> bench/data.json
	$(PYTHON) -m bench.data --out bench/data.json

bench-cpu-train-speed:  ## CPU training steps/s of the quickstart, merge-base with main vs this tree, in one run (~5 min) -> bench/cpu_train_speed.json
	$(PYTHON) -m bench.cpu_train_speed --out bench/cpu_train_speed.json

bench-render:  ## renderer speed and memory vs the naive reference -> bench/render.json
	$(PYTHON) -m bench.render --out bench/render.json

bench-splat:  ## splatting-stage depth quality and seconds per scene -> bench/splat.json
	$(PYTHON) -m bench.splat --out bench/splat.json

bench-confidence:  ## calibration of the splatting confidence: actual relative depth error per confidence bin (16 held-out scenes, ~1 min) -> bench/confidence.json
	$(PYTHON) -m bench.confidence --out bench/confidence.json

bench-predict-stack:  ## sdgs predict --stack seconds and peak memory at 640x480 and 12 MP -> bench/predict_stack.json
	$(PYTHON) -m bench.predict_stack --out bench/predict_stack.json

bench-splat-real:  ## splatting stage on real textures (DFD-indoor; data dir from SDGS_DFD_INDOOR_DIR) -> bench/splat_real.json, docs/splat_real.png
	$(PYTHON) -m bench.splat_real --out bench/splat_real.json

bench-train-long:  ## the experiments of lightning_configs/experiments/bench_train_long.yaml (2 048 scenes, 2 304 steps, ~60 min) with learning curves -> bench/train_long.json, docs/train_long.png
	$(PYTHON) -m bench.train --long --out bench/train_long.json

bench-train:  ## the experiments of lightning_configs/experiments/bench_train.yaml: single-image bar, ablations, seeds, variants, 144-stack FoD500 folder (~2.5 h) -> bench/train.json, results/bench_train/table.md
	$(PYTHON) -m bench.train --out bench/train.json

bench-texture-error:  ## where single-image depth errs: error per local-contrast bin of the held-out scenes, both texture families, for the models make bench-train left in results/ (~1 min) -> bench/texture_error.json, docs/texture_error.png
	$(PYTHON) -m bench.texture_error --results results

gpu-check:  ## on one CUDA GPU (<= 8 min): gsplat/triton vs torch parity, renderer and fit speed per backend, training before/after with NVML utilisation, DDP -> bench/gpu.json
	$(PYTHON) -m bench.gpu_check --parity-seeds 4 --out bench/gpu.json

GPU_MINUTES ?= 20

bench-gpu-train:  ## on one CUDA GPU: fod500.yaml on procedural 256² scenes for GPU_MINUTES of training, curve + images/s + test rows -> bench/gpu_train.json, docs/gpu_train.png
	$(PYTHON) -m bench.gpu_train --minutes $(GPU_MINUTES)

gpu-session:  ## a lent GPU machine, one bounded call (~9.5 min): gsplat build + bench-gpu-train (2 min) + gpu-check (triton, training before/after) + CUDA and triton tests -> OUT
	bash bench/gpu_session.sh

STEPS ?= 1200

bench-single-image:  ## single-image diagnosis: oracle vs self-supervised SDNet (SDGSModule, stage sdnet), curves, per focus index/band, two texture families (~25 min) -> bench/single_image_oracle.json, docs/single_image.md (STEPS per run; the long curves are make bench-train-long's)
	$(PYTHON) -m bench.single_image_oracle --steps $(STEPS) --out bench/single_image_oracle.json
	$(PYTHON) -m docs.make_results

reproduce-table:  ## train/test every experiment of lightning_configs/table.yaml -> results/table.{md,json} (FORCE=1 reruns)
	$(PYTHON) -m sdgs.cli.report --experiments lightning_configs/table.yaml --out results

docs:  ## regenerate docs/results.md, docs/benchmarks.md, docs/single_image.md, the README's figure and results-table blocks and the figure blocks of docs/gpu.md and docs/splat_real.md from the bench JSONs
	$(PYTHON) -m docs.make_results

QS_RUN ?= runs/quickstart-ckpt

quickstart-ckpt:  ## train the quickstart model in its own run folder (resumes it if present), copy to checkpoints/quickstart.ckpt
	sdgs fit --config lightning_configs/quickstart.yaml --trainer.default_root_dir=$(QS_RUN) \
		$$(test -f $(QS_RUN)/checkpoints/last.ckpt && echo --ckpt_path last)
	mkdir -p checkpoints && cp $(QS_RUN)/checkpoints/last.ckpt checkpoints/quickstart.ckpt
	@echo "try: sdgs predict --ckpt_path checkpoints/quickstart.ckpt --input data/procedural/000000_02All.tif --focus-distance 0.3 --out predictions"

DFD_INDOOR_DIR ?= $(or $(SDGS_DFD_INDOOR_DIR),../shared/data/dfd_indoor)
REAL_RUN ?= runs/dfd_indoor-ckpt

real-ckpt:  ## train the real-photo model on DFD-indoor (self-supervised, 30-40 min on 2 CPU cores, most of it fitting the teacher once; resumes) -> checkpoints/dfd_indoor.ckpt
	sdgs fit --config lightning_configs/dfd_indoor.yaml --data.init_args.data_dir=$(DFD_INDOOR_DIR) \
		--trainer.default_root_dir=$(REAL_RUN) $$(test -f $(REAL_RUN)/checkpoints/last.ckpt && echo --ckpt_path last)
	mkdir -p checkpoints && cp $(REAL_RUN)/checkpoints/last.ckpt checkpoints/dfd_indoor.ckpt
	@echo "try: sdgs predict --ckpt_path checkpoints/dfd_indoor.ckpt --camera dfd_indoor --focus-distance 1.7 --input photo.JPG --out predictions"

bench-real:  ## single-image depth on REAL lens blur (DFD-indoor validation scenes): every row, the constant and the no-learning baselines -> bench/real.json, docs/real_photos.png
	$(PYTHON) -m bench.real --data_dir $(DFD_INDOOR_DIR) --out bench/real.json

synth:  ## write a small procedural dataset in FoD500 format to data/procedural
	sdgs synth --out data/procedural --scenes 64 --size 128

clean:  ## remove caches and run folders (never data/)
	rm -rf .pytest_cache .ruff_cache runs cache
