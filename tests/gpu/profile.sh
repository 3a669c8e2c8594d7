#!/usr/bin/env bash
# Kernel-level profiles of the decode step (issue 8, item 13's workload) and of the
# GRPO step (issue 9, item 10's), with bench/kprof (CUPTI activity records through
# the driver's injection hook; Nsight tools do not run the Go binaries there).
# Build here and pack as for tests/gpu/bench.sh, plus the profiler:
#   gcc -O2 -shared -fPIC -o bin/libkprof.so bench/kprof/kprof.c -ldl -lpthread
# then carry .carry and run on the GPU machine: bash tests/gpu/profile.sh [decode] [step] [iteration]
# Each part writes OUT/<part>.json (the benchmark), OUT/<part>.txt (the summary of its
# last, warm repetition) and, for decode, OUT/decode-hlo.tar.xz (the optimized HLO of the
# decode program, to map kernel names to operations); step also writes OUT/step-hlo.tar.xz (the
# optimized HLO of the grpo programs).
set -uo pipefail
cd "$(dirname "$0")/../.."
OUT=${OUT:-/tmp/mmft-profile}; mkdir -p "$OUT"
[[ -x bin/rollout ]] || python3 -c "import tarfile; tarfile.open('.carry/bin.tar.xz').extractall('.')"
export GOPJRT_CUDA_CHECKS=0
A=.carry/assets
CUPTI=${KPROF_CUPTI:-$(find /opt /usr/local/cuda* /usr/lib -name 'libcupti.so*' 2>/dev/null | sort | tail -1)}
echo "CUPTI: ${CUPTI:-not found}"
[[ -n $CUPTI ]] || exit 1
# prof NAME CMD...: run CMD with the profiler injected, its JSON to OUT/NAME.json.
prof() {
  local name=$1; shift
  CUDA_INJECTION64_PATH=$PWD/bin/libkprof.so KPROF_CUPTI=$CUPTI KPROF_OUT=/tmp/$name.csv \
    timeout 500 "$@" > "$OUT/$name.json" 2> "$OUT/$name.err"
  echo "rc=$? ($name)"; tail -3 "$OUT/$name.err"
}
for w in "${@:-decode step}"; do
  echo "== $w $(date -u +%H:%M:%S)"
  case $w in
    decode)
      XLA_FLAGS="--xla_gpu_per_fusion_autotune_cache_dir=/tmp/xla-autotune --xla_dump_to=/tmp/hlo --xla_dump_hlo_as_text" \
        prof decode bin/rollout --config $A/config.json --device gpu --reps 2
      per=$(python3 -c "import json; t=open('$OUT/decode.json').read(); r=json.loads(t[t.index('{'):]); x=r['runs'][-1]; print(x['decode_calls']*r['workload']['steps_per_call'])")
      python3 bench/kprof/summarize.py /tmp/decode.csv "$OUT/decode.json" --per "$per" --top 60 > "$OUT/decode.txt" 2>&1
      (cd /tmp/hlo && ls -S *after_optimizations.txt | head -8 | tar -cf - -T - | xz -T4 > "$OUT/decode-hlo.tar.xz")
      xz -T4 -c /tmp/decode.csv > "$OUT/decode.csv.xz"; head -40 "$OUT/decode.txt" ;;
    step)
      XLA_FLAGS="--xla_gpu_per_fusion_autotune_cache_dir=/tmp/xla-autotune --xla_dump_to=/tmp/hlo-step --xla_dump_hlo_as_text --xla_dump_hlo_module_re=.*grpo.*" \
        prof step bin/grpostep --assets $A --device gpu --mode step --reps 2 --recompute --micro 16
      python3 bench/kprof/summarize.py /tmp/step.csv "$OUT/step.json" --top 60 > "$OUT/step.txt" 2>&1
      (cd /tmp/hlo-step && ls *after_optimizations.txt | tar -cf - -T - | xz -T4 > "$OUT/step-hlo.tar.xz")
      xz -T4 -c /tmp/step.csv > "$OUT/step.csv.xz"; head -40 "$OUT/step.txt" ;;
    iteration)
      XLA_FLAGS=--xla_gpu_per_fusion_autotune_cache_dir=/tmp/xla-autotune \
        prof iteration bin/grpostep --assets $A --device gpu --mode iteration --n 4 --new 512 --rank 4 --micro 8 --reps 2
      python3 bench/kprof/summarize.py /tmp/iteration.csv "$OUT/iteration.json" --top 40 > "$OUT/iteration.txt" 2>&1
      head -30 "$OUT/iteration.txt" ;;
  esac
done
