#!/usr/bin/env bash
# The CPU measurements of bench/RESULTS.md: float32, lite networks with random weights, one guided
# step (batch 2) ours against diffusers', small and 1024x1024 latents, then a whole small request.
# One thread and interleaved runs: on a shared machine compare the CPU-time and paired ratios.
# Usage: bench/cpu.sh [OUT_DIR]   (PYTHON=… to pick the interpreter; needs bench/requirements.txt)
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-.venv/bin/python}
OUT=${1:-bench}
run() { echo "+ python -m bench $*"; "$PY" -m bench "$@" 2>/dev/null; }

run steps --variant lite --c-latent 8x8 --b-latent 64x64 --repeats 7 --threads 1 --json "$OUT/cpu_steps_small.json"
run steps --variant lite --c-latent 8x8 --b-latent 64x64 --repeats 7 --threads 1 --no-packing --json "$OUT/cpu_steps_small_unpacked.json"
run steps --variant lite --size 1024 --stages stage_c --repeats 3 --threads 1 --json "$OUT/cpu_steps_1024_c.json"
run steps --variant lite --size 1024 --stages stage_b --repeats 2 --warmup 0 --threads 1 --json "$OUT/cpu_steps_1024_b.json"
run request --variant lite --size 256 --prior-steps 10 --decoder-steps 4 --repeats 2 --warmup 0 --threads 1 --json "$OUT/cpu_request_256.json"
run parity --variant lite --c-latent 8x8 --b-latent 64x64 --dtype bfloat16 --json "$OUT/cpu_parity_bf16.json"
