#!/usr/bin/env bash
# The CPU measurements of bench/RESULTS.md: float32, lite networks with random weights, one guided
# step (batch 2) ours against diffusers', small and 1024x1024 latents, then a whole small request.
# One thread and interleaved runs: on a shared machine compare the CPU-time and paired ratios.
# Usage: bench/cpu.sh [OUT_DIR]   (PYTHON=… to pick the interpreter; needs bench/requirements.txt;
#        BASELINE=DIR: a checkout of older code for bench/studio_stream.py to compare with)
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-.venv/bin/python}
OUT=${1:-bench}
run() { echo "+ python -m bench $*"; "$PY" -m bench "$@" 2>/dev/null; }

run steps --variant lite --c-latent 8x8 --b-latent 64x64 --repeats 7 --threads 1 --json "$OUT/cpu_steps_small.json"
run steps --variant lite --c-latent 8x8 --b-latent 64x64 --repeats 7 --threads 1 --plain-products --json "$OUT/cpu_steps_small_plain.json"
run steps --variant lite --size 1024 --stages stage_c --repeats 3 --threads 1 --json "$OUT/cpu_steps_1024_c.json"
run steps --variant lite --size 1024 --stages stage_b --repeats 2 --warmup 0 --threads 1 --json "$OUT/cpu_steps_1024_b.json"
run request --variant lite --size 256 --prior-steps 10 --decoder-steps 4 --repeats 2 --warmup 0 --threads 1 --json "$OUT/cpu_request_256.json"
run parity --variant lite --c-latent 8x8 --b-latent 64x64 --dtype bfloat16 --json "$OUT/cpu_parity_bf16.json"
# Reused host buffers (devices.reuse_host_buffers) against glibc's default: paired in one process, then
# with diffusers beside, each allocator setting in its own process (the setting is process-wide).
for a in "--stage stage_b --size 1024 --pairs 2" "--stage stage_c --size 1024 --pairs 2" "--stage stage_b --latent 64x64 --pairs 4"; do
  echo "+ python bench/host_buffers.py --variant lite $a"; "$PY" bench/host_buffers.py --variant lite $a 2>/dev/null
done | tee "$OUT/cpu_host_buffers.txt"
run request --variant lite --size 256 --prior-steps 10 --decoder-steps 4 --repeats 2 --warmup 0 --threads 1 --json "$OUT/cpu_request_256_reuse.json"
run request --variant lite --size 256 --prior-steps 10 --decoder-steps 4 --repeats 2 --warmup 0 --threads 1 --no-buffer-reuse --json "$OUT/cpu_request_256_default_allocator.json"
run steps --variant lite --size 1024 --stages stage_b --repeats 2 --warmup 0 --threads 1 --json "$OUT/cpu_steps_1024_b_reuse.json"
run steps --variant lite --size 1024 --stages stage_b --repeats 2 --warmup 0 --threads 1 --no-buffer-reuse --json "$OUT/cpu_steps_1024_b_default_allocator.json"
# A request whose prompts the text encoder still has (text.TextEncoder's kept embeddings), beside a cold one and diffusers.
run request --variant lite --size 256 --prior-steps 10 --decoder-steps 4 --repeats 3 --warmup 1 --threads 1 --json "$OUT/cpu_request_256_prompts_kept.json"
# The studio's request with Stage B intermediates every 2 steps against one halfway (ui.generation.decode_every).
{ echo "+ python bench/stage_b_views.py --variant lite --size 256 --pairs 3"; "$PY" bench/stage_b_views.py --variant lite --size 256 --pairs 3 2>/dev/null; } | tee "$OUT/cpu_stage_b_views.txt"
# Stage A's decode channels-last (as it runs) against channels-first, in turns in one process.
for a in "--size 1024 --pairs 2" "--size 256 --pairs 4"; do
  echo "+ python bench/stage_a_layout.py $a"; "$PY" bench/stage_a_layout.py $a 2>/dev/null
done | tee "$OUT/cpu_stage_a_layout.txt"
# What the studio's /generate stream adds to a run (BASELINE=DIR: also an older checkout, in turns).
for a in "" "--size 256"; do
  echo "+ python bench/studio_stream.py --runs 3 $a ${BASELINE:+--baseline $BASELINE}"
  "$PY" bench/studio_stream.py --runs 3 $a ${BASELINE:+--baseline "$BASELINE"} 2>/dev/null
done | tee "$OUT/cpu_studio_stream.txt"
