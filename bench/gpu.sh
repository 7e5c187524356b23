#!/usr/bin/env bash
# Every GPU measurement of bench/RESULTS.md in one run (< 8 minutes on an H200); installs nothing.
# Needs: a Python with CUDA torch, transformers and diffusers (bench/requirements.txt) already
# installed; ../shared/reference/pipeline/tiny-cascade/tokenizer (or TOKENIZER=dir) for the request runs.
# Usage: bench/gpu.sh [OUT_DIR]   (PYTHON=… to pick the interpreter; COMPILE=1 adds a torch.compile run: inductor + CUDA graphs)
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-.venv/bin/python}
OUT=${1:-bench/gpu-results}
mkdir -p "$OUT"
bench() {
  echo "+ python -m bench $*" | tee -a "$OUT/log.txt"
  if ! timeout 300 "$PY" -m bench "$@" 2>>"$OUT/stderr.txt" | tee -a "$OUT/log.txt"; then
    echo "FAILED or over tolerance (see $OUT/stderr.txt): $*" | tee -a "$OUT/log.txt"
  fi
}

nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv | tee "$OUT/log.txt"
"$PY" -c "import torch, diffusers; print('torch', torch.__version__, 'diffusers', diffusers.__version__)" | tee -a "$OUT/log.txt"
DIFF=""
"$PY" -c "import diffusers" 2>/dev/null || { DIFF="--no-diffusers"; echo "diffusers missing: ours alone" | tee -a "$OUT/log.txt"; }

# 1. bf16 against fp32, same weights, one guided step per stage at 1024x1024 (tolerance: see RESULTS.md).
bench parity --device cuda --variant full --size 1024 --dtype bfloat16 --json "$OUT/parity.json"
# 2. One guided step, bf16, 1024x1024, batch 1 and 4 images (2 and 8 rows with guidance), ours vs diffusers.
for n in 1 4; do
  bench steps --device cuda --variant full --size 1024 --dtype bfloat16 --images $n --repeats 5 $DIFF --json "$OUT/steps_b$n.json"
done
if [ "${COMPILE:-0}" = 1 ]; then
  bench steps --device cuda --variant full --size 1024 --dtype bfloat16 --images 4 --repeats 5 --no-diffusers \
    --compile reduce-overhead --json "$OUT/steps_b4_compiled.json"
fi
# 3. The whole request: Stage C 20 steps guidance 4, Stage B 10 steps guidance 1.1, batch 1 and 4.
for n in 1 4; do
  bench request --tokenizer "${TOKENIZER:-../shared/reference/pipeline/tiny-cascade/tokenizer}" --device cuda --variant full --size 1024 --dtype bfloat16 --images $n --repeats 2 $DIFF \
    --prior-steps 20 --decoder-steps 10 --json "$OUT/request_b$n.json"
done
# 4. Peak GPU memory and time of a request in each offload mode (README, "Memory"), full and lite.
echo "+ python bench/offload_memory.py" | tee -a "$OUT/log.txt"
timeout 300 "$PY" bench/offload_memory.py --variant full lite 2>>"$OUT/stderr.txt" | tee "$OUT/offload.md" | tee -a "$OUT/log.txt"
echo "done: $OUT"
