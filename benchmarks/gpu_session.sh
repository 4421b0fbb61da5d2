#!/usr/bin/env bash
# One call on a lent GPU (see docs/gpu.md): the CUDA tests, the tuning sweep, end to end, the per-layer benchmark
# and the study on the GPU, each stage under its own time limit inside one overall limit, logs and results in
# $OUT. Usage: OUT=/some/dir LIMIT=560 bash benchmarks/gpu_session.sh [stage ...]
# (stages: info tests tune e2e bench study bench-ma; default: all, in that order)
set -u
OUT=${OUT:-/tmp/gpu_session}
LIMIT=${LIMIT:-560}
mkdir -p "$OUT"
export PYTHONPATH="$PWD/src${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1 TRITON_INTERPRET=0
START=$(date +%s)
TUNED="$OUT/tuned.json"

stage() {  # stage NAME MAX_SECONDS COMMAND...: run COMMAND for at most MAX_SECONDS (less if the overall limit is near)
  local name=$1 max=$2 left
  shift 2
  left=$((LIMIT - ($(date +%s) - START)))
  [ "$left" -lt "$max" ] && max=$left
  if [ "$max" -lt 15 ]; then echo "## $name: skipped, no time left" | tee -a "$OUT/log.txt"; return; fi
  echo "## $name (at most ${max} s, at $(($(date +%s) - START)) s)" | tee -a "$OUT/log.txt"
  timeout --kill-after=10 "$max" "$@" 2>&1 | tee -a "$OUT/log.txt"
  echo "## $name: exit ${PIPESTATUS[0]} after $(($(date +%s) - START)) s" | tee -a "$OUT/log.txt"
}

configs() { [ -s "$TUNED" ] && echo "--configs $TUNED"; }

run() {
  case $1 in
    info) stage info 30 bash -c 'nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.sm,clocks.mem \
      --format=csv; python3 -c "import torch, triton, sys; print(sys.version.split()[0], torch.__version__, \
      torch.version.cuda, triton.__version__, torch.cuda.get_device_name())"; nproc' ;;
    tests) stage tests 150 python3 -m pytest -q -p no:cacheprovider -p no:benchmark -o addopts="" -n 8 -rA -s \
      -W "ignore::DeprecationWarning" -k cuda tests/test_triton_kernel.py tests/test_backend.py ;;
    tune) stage tune 200 python3 benchmarks/tune_triton.py --out "$TUNED" --budget-s 140 --rep-ms 10 ;;
    e2e) stage e2e 100 bash -c "python3 benchmarks/bench_triton_e2e.py --cases fp16:256 bf16:256 fp16:32 fp16:1 \
      --repeats 20 $(configs) | tee $OUT/triton_e2e.jsonl" ;;
    bench) stage bench 400 python3 benchmarks/bench_triton.py --out "$OUT" $(configs) --repeats 10 --gpu-rounds 3 \
      --compile-mode "${COMPILE_MODE:-default}" --compile-budget-s "${COMPILE_BUDGET:-120}" ;;
    bench-ma) stage bench-ma 300 python3 benchmarks/bench_triton.py --out "$OUT/ma" $(configs) --dtype fp16 \
      --batch 256 32 --layers 0 1 2 3 4 5 6 11 12 --repeats 10 --gpu-rounds 3 \
      --compile-mode max-autotune-no-cudagraphs --compile-budget-s "${COMPILE_BUDGET_MA:-150}" ;;
    study) stage study 200 bash -c "python3 -m sepconv study --device cuda --out /tmp/gpu_study --overwrite \
      --no-plots && cp /tmp/gpu_study/results.json $OUT/study_results.json" ;;
    *) echo "unknown stage $1" ;;
  esac
}

for s in "${@:-info tests tune e2e bench study bench-ma}"; do
  for one in $s; do run "$one"; done
done
echo "## done after $(($(date +%s) - START)) s; files in $OUT:"; ls -la "$OUT"
