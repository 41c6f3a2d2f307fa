#!/usr/bin/env bash
# Every GPU check of this repo in one call on a fresh, lent GPU machine, bounded to DEADLINE_S seconds:
#   1. gsplat's CUDA kernels JIT-compile (minutes, on the CPU cores) in the background, niced, while
#   2. bench.gpu_train trains fod500.yaml on procedural 256² scenes with the torch renderer on the GPU
#      (GPU_TRAIN_MINUTES of training, then the test rows) -> $OUT/gpu_train.{json,png}
#   3. bench.gpu_check with the kernels built: gsplat parity (+4 seeds), triton parity, renderer and fit speed
#      of the torch / gsplat / triton backends, training before/after the GPU variant (fod500.yaml plain vs with
#      fod500_gpu.yaml) with NVML utilisation over the timed steps -> $OUT/gpu.json
#   4. the test suite's CUDA tests (pytest -m cuda) and the triton backend's tests on the GPU
# and the run folders' logs (no checkpoints) -> $OUT/runs.tgz. Every step writes its log under $OUT.
#
#   OUT=/tmp/gpu_out bash bench/gpu_session.sh         (OUT: the folder that comes back; default /tmp/gpu_out)
#   DEVICE=cpu bash bench/gpu_session.sh               (dry run of the same steps at toy sizes, no GPU, ~3 min)
#
# Packages the machine lacks travel as wheels in .whl/ (installed into /tmp/site first), see README "GPU".
set -u
OUT=${OUT:-/tmp/gpu_out}
DEADLINE_S=${DEADLINE_S:-570}
MINUTES=${GPU_TRAIN_MINUTES:-2}  # 2, not 3: the train/train_gpu sections of bench.gpu_check need the minute
DEVICE=${DEVICE:-cuda}
DRY=(); [ "$DEVICE" = cuda ] || DRY=(--device cpu --tiny)
COMMIT=${COMMIT:-$(git rev-parse --short HEAD 2>/dev/null || echo unknown)}
mkdir -p "$OUT"
export PYTHONUNBUFFERED=1 WANDB_MODE=disabled PYTHONPATH=$PWD${PYTHONPATH:+:$PYTHONPATH}
left() { echo $((DEADLINE_S - SECONDS)); }
# seconds a step may take: what is left minus a reserve for the steps after it, at least 1 (timeout 0 = none)
limit() { local t=$(($(left) - $1)); echo $((t > 1 ? t : 1)); }
say() { echo "[gpu-session ${SECONDS}s] $*"; }

if [ "$DEVICE" = cuda ] && compgen -G ".whl/*.whl" >/dev/null; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl \
    || { say "wheel install failed"; exit 1; }
  export PYTHONPATH=$PYTHONPATH:/tmp/site
fi
[ "$DEVICE" = cuda ] && nvidia-smi -L
python3 -c "import torch, lightning, gsplat, kornia; print('torch', torch.__version__, torch.cuda.is_available() and \
torch.cuda.get_device_name(0), 'lightning', lightning.__version__, 'gsplat', gsplat.__version__)" || exit 1

say "building gsplat's kernels in the background"
rm -f "$OUT/gsplat_build.log"
# its own process group (setsid), so that stopping it also stops ninja's nvcc jobs
setsid bash -c '
  [ "$1" = cuda ] || { echo "rc=0 seconds=0 (no build on CPU)"; exit 0; }
  t0=$SECONDS
  MAX_JOBS=$(nproc) TORCH_CUDA_ARCH_LIST=${TORCH_CUDA_ARCH_LIST:-9.0} nice -n 19 \
    python3 -c "from gsplat.cuda._backend import _C; assert _C is not None, \"no kernels\""
  echo "rc=$? seconds=$((SECONDS - t0))"' _ "$DEVICE" >"$OUT/gsplat_build.log" 2>&1 &
BUILD=$!

say "bench.gpu_train: $MINUTES min of training (torch renderer)"
timeout "$(limit 150)" python3 -m bench.gpu_train --minutes "$MINUTES" --backend torch --results /tmp/results \
  --out "$OUT/gpu_train.json" --figure "$OUT/gpu_train.png" --commit "$COMMIT" "${DRY[@]}" >"$OUT/gpu_train.log" 2>&1
say "bench.gpu_train exit $?"
# the run folders' text (logs, metrics, configs): checkpoints and preview images would not come back (16 MiB)
(cd /tmp && find results -name '*.csv' -o -name '*.log' -o -name '*.json' -o -name '*.yaml' | tar czf "$OUT/runs.tgz" -T -)

while kill -0 $BUILD 2>/dev/null && [ "$(left)" -gt 120 ]; do sleep 2; done
if kill -0 $BUILD 2>/dev/null; then
  kill -- -$BUILD 2>/dev/null
  say "gsplat's kernels still building at the deadline: stopped; skipping bench.gpu_check and the CUDA tests"
  exit 1
fi
build=$(tail -1 "$OUT/gsplat_build.log")
say "gsplat build: $build"
case $build in
  rc=0*) ;;
  *) say "gsplat's kernels did not build (see gsplat_build.log): skipping bench.gpu_check and the CUDA tests"; exit 1 ;;
esac

# train / train_gpu: training speed before/after (bench.gpu_train above measures accuracy over time)
say "bench.gpu_check"
timeout "$(limit 45)" python3 -m bench.gpu_check --parity-seeds 4 \
  --sections parity parity_seeds parity_triton render_speed fit train train_gpu \
  --budget-s "$(limit 100)" --commit "$COMMIT" --out "$OUT/gpu.json" "${DRY[@]}" >"$OUT/gpu_check.log" 2>&1
say "bench.gpu_check exit $?"

say "pytest -m cuda + the triton backend's tests"
timeout "$(limit 5)" python3 -m pytest -q -p no:cacheprovider tests/test_render.py tests/test_render_triton.py \
  -k "cuda or gsplat or triton" >"$OUT/pytest_cuda.log" 2>&1
say "pytest exit $?: $(tail -1 "$OUT/pytest_cuda.log")"
