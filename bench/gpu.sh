#!/usr/bin/env bash
# Every GPU measurement of bench/RESULTS.md in one run (sized for < 8 minutes on an H200); installs nothing.
# Default parts (issue 17): floor = one process, one full model: eager, CUDA graphs, 8 requests batched vs one at
# a time, diffusers at 1 image, host syncs, SDPA backends, compiled blocks under graphs (bench/floor.py);
# offload = peak memory and time of --offload none/model/sequential, full and lite; parity = bf16 vs fp32.
# Needs: a Python with CUDA torch and transformers, and diffusers (bench/requirements.txt) for the side by
# side; a CLIP tokenizer folder (TOKENIZER=dir, default the reference's tiny-cascade one) for requests.
# Usage: bench/gpu.sh [OUT_DIR]
#   PYTHON=…     the interpreter (default .venv/bin/python)
#   PARTS="…"    which parts, in order (default: floor offload parity; also: batching steps request1 request4
#                compile1 compile4 profile views)
#   DEADLINE=s   start no command after this many seconds (default 450); each gets at most what is left
#   DEVICE=cuda VARIANT=full SIZE=1024 DTYPE=bfloat16   (DEVICE=cpu VARIANT=tiny SIZE=256 checks the script)
set -uo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-.venv/bin/python}
OUT=${1:-bench/gpu-results}
DEVICE=${DEVICE:-cuda} VARIANT=${VARIANT:-full} SIZE=${SIZE:-1024} DTYPE=${DTYPE:-bfloat16}
DEADLINE=${DEADLINE:-450}
TOKENIZER=${TOKENIZER:-../shared/reference/pipeline/tiny-cascade/tokenizer}
mkdir -p "$OUT"
START=$SECONDS
log() { echo "$*" | tee -a "$OUT/log.txt"; }
# run NAME LIMIT CMD…: the command with a timeout of min(LIMIT, time left), its output in the log
run() {
  local name=$1 limit=$2 left=$((DEADLINE - (SECONDS - START)))
  shift 2
  if [ "$left" -le 10 ]; then log "SKIPPED (deadline): $name"; return; fi
  [ "$limit" -gt "$left" ] && limit=$left
  log "+ [$((SECONDS - START)) s] $name: $*"
  timeout "$limit" "$@" 2>>"$OUT/stderr.txt" | tee -a "$OUT/log.txt"
  local rc=${PIPESTATUS[0]}
  [ "$rc" = 0 ] || log "FAILED ($rc: over tolerance, error or timeout; see stderr.txt): $name"
}
bench() { local name=$1 limit=$2; shift 2; run "$name" "$limit" "$PY" -m bench "$@" --device "$DEVICE" --variant "$VARIANT" --size "$SIZE" --dtype "$DTYPE"; }

log "$(date -u +%FT%TZ) $(nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader 2>/dev/null)"
log "$("$PY" -c "import torch, transformers; print('torch', torch.__version__, 'transformers', transformers.__version__)")"
DIFF=""
if V=$("$PY" -c "import diffusers; print(diffusers.__version__)" 2>/dev/null); then log "diffusers $V"; else DIFF="--no-diffusers"; log "diffusers missing: ours alone"; fi
REQ=(--tokenizer "$TOKENIZER" --prior-steps 20 --decoder-steps 10)

for part in ${PARTS:-floor offload parity}; do
  case $part in
    # items 1-3 of issue 17 in one process (each section is saved as it ends; a timeout keeps those done)
    floor) run floor 290 "$PY" -m bench.floor --device "$DEVICE" --variant "$VARIANT" --size "$SIZE" --dtype "$DTYPE" --tokenizer "$TOKENIZER" --json "$OUT/floor.json" ;;
    # 8 simultaneous one-image requests, one at a time against batched, steps from CUDA graphs (also in floor)
    batching) run batching 150 "$PY" -m bench.batching --device "$DEVICE" --variant "$VARIANT" --size "$SIZE" --dtype "$DTYPE" --prior-steps 20 --decoder-steps 10 --tokenizer "$TOKENIZER" $([ "$DEVICE" = cuda ] && echo --cuda-graphs) --json "$OUT/batching.json" ;;
    # bf16 against fp32, same weights, one guided step per stage (tolerance: RESULTS.md)
    parity) bench parity 50 parity --json "$OUT/parity.json" ;;
    # one guided step, batch 1 and 4 images (2 and 8 rows with guidance), ours and diffusers interleaved
    steps) for n in 1 4; do bench "steps b$n" 90 steps --images $n --repeats 10 $DIFF --json "$OUT/steps_b$n.json"; done ;;
    # where the batch-4 step's time goes, operator by operator
    profile) bench "profile b4" 90 profile --images 4 $DIFF --json "$OUT/profile_b4.json" ;;
    # the whole request: Stage C 20 steps guidance 4, Stage B 10 steps guidance 1.1, eager or with the
    # studio's --compile default (the warm-up run compiles; the log's timestamps give the compile time)
    request1|request4) n=${part#request}; bench "request b$n" 120 request --images $n --repeats 3 $DIFF "${REQ[@]}" --json "$OUT/request_b$n.json" ;;
    compile1|compile4) n=${part#compile}; bench "request b$n compiled" 200 request --images $n --repeats 3 $DIFF --compile default "${REQ[@]}" --json "$OUT/request_b${n}_compiled.json" ;;
    # peak GPU memory and time of a request in each offload mode (README, "Memory")
    offload) run offload 100 "$PY" bench/offload_memory.py --device "$DEVICE" --size "$SIZE" --variant $([ "$VARIANT" = full ] && echo full lite || echo "$VARIANT") --json "$OUT/offload.json" ;;
    # the studio's request: Stage B intermediates every 2 steps against one halfway (ui.generation.decode_every)
    views) run views 120 "$PY" bench/stage_b_views.py --device "$DEVICE" --variant "$VARIANT" --size "$SIZE" --dtype "$DTYPE" --tokenizer "$TOKENIZER" ;;
    *) log "unknown part $part" ;;
  esac
done
log "done in $((SECONDS - START)) s: $OUT"
"$PY" -m bench.gpu_summary "$OUT" | tee "$OUT/summary.txt"
