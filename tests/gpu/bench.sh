#!/usr/bin/env bash
# GPU benchmarks of the engine (issue 8 C) and the trainer (issue 9.10) beside the
# HF/PEFT peer, in one call on the GPU machine. Build here and pack:
#   for x in rollout:./bench/rollout grpostep:./bench/grpostep mmft:./cmd/mmft; do
#     CGO_ENABLED=1 go build -ldflags="-s -w" -o bin/${x%%:*} ${x#*:}; done
#   mkdir -p .carry/assets && tar -cf - bin | xz -T2 > .carry/bin.tar.xz
#   cp ../shared/assets/qwen2-vl-2b-instruct/{*.json,merges.txt} .carry/assets/
#   cp ../shared/peer/hf_grpo_baseline.py .carry/
# then carry .carry and run: bash tests/gpu/bench.sh [what...]
#   (what: rollout rollout-shared (--shared-prefix) rollout16 (shared, 16 steps per call) rollout64
#    (64 prompts × 8 × 512) peer step iteration, and the GRPO step's faster paths: step-shared step-recompute
#    step-recompute-bf16 step-recompute32 step-exact (MMFT_XLA_EXACT_BF16_DOTS=1), rollout-exact; each of those also samples the GPU's used memory every 100 ms
#    and prints its peak, context included; alias: the rollout and the recompute step with and without
#    MMFT_XLA_ALIAS=on, and the decode program's optimized HLO checked for its input_output_alias and
#    for whole-cache copies — see bench/results/2026-12-02-h200-session4.md; Go CPU profiles of their
#    warm runs go to OUT/*.pprof, for `go tool pprof`)
set -uo pipefail
cd "$(dirname "$0")/../.."
OUT=${OUT:-/tmp/mmft-bench}; mkdir -p "$OUT"
[[ -x bin/rollout ]] || python3 -c "import tarfile; tarfile.open('.carry/bin.tar.xz').extractall('.')"
export GOPJRT_CUDA_CHECKS=0 XLA_FLAGS="${XLA_FLAGS:---xla_gpu_per_fusion_autotune_cache_dir=/tmp/xla-autotune}"
A=.carry/assets
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader | tee "$OUT/gpu.txt"
# stepvariant NAME FLAGS...: bin/grpostep --mode step with FLAGS, GPU memory sampled while it runs.
stepvariant() {
  local name=$1; shift
  nvidia-smi --query-gpu=memory.used --format=csv,noheader,nounits -lms 100 > "$OUT/$name.mem" 2>/dev/null & local smi=$!
  timeout 420 bin/grpostep --assets $A --device gpu --mode step --reps 3 "$@" > "$OUT/$name.json" 2> "$OUT/$name.err"; echo "rc=$?"
  kill $smi 2>/dev/null; wait $smi 2>/dev/null
  echo "peak GPU memory used (MiB, nvidia-smi): $(sort -n "$OUT/$name.mem" | tail -1)"
  tail -c 3000 "$OUT/$name.json"; tail -5 "$OUT/$name.err"
}
for what in "${@:-rollout peer step}"; do
  for w in $what; do
    echo "== $w $(date -u +%H:%M:%S)"
    case $w in
      rollout) timeout 420 bin/rollout --config $A/config.json --device gpu --reps 2 > "$OUT/rollout.json" 2> "$OUT/rollout.err"; echo "rc=$?"; tail -c 1500 "$OUT/rollout.json" ;;
      rollout-shared) timeout 420 bin/rollout --config $A/config.json --device gpu --reps 2 --shared-prefix > "$OUT/rollout-shared.json" 2> "$OUT/rollout-shared.err"; echo "rc=$?"; tail -c 1500 "$OUT/rollout-shared.json" ;;
      rollout16) timeout 420 bin/rollout --config $A/config.json --device gpu --reps 2 --shared-prefix --steps-per-call 16 > "$OUT/rollout16.json" 2> "$OUT/rollout16.err"; echo "rc=$?"; tail -c 1500 "$OUT/rollout16.json" ;;
      rollout64) timeout 420 bin/rollout --config $A/config.json --device gpu --reps 2 --prompts 64 --new 512 > "$OUT/rollout64.json" 2> "$OUT/rollout64.err"; echo "rc=$?"; tail -c 1500 "$OUT/rollout64.json" ;;
      peer) timeout 400 python3 .carry/hf_grpo_baseline.py > "$OUT/peer.jsonl" 2> "$OUT/peer.err"; echo "rc=$?"; cat "$OUT/peer.jsonl" ;;
      step) timeout 420 bin/grpostep --assets $A --device gpu --mode step --reps 3 > "$OUT/grpostep.json" 2> "$OUT/grpostep.err"; echo "rc=$?"; tail -c 2500 "$OUT/grpostep.json"; tail -5 "$OUT/grpostep.err" ;;
      step-shared) stepvariant $w --shared-prompt --micro 8 ;;
      step-recompute) stepvariant $w --recompute --micro 16 ;;
      step-recompute-bf16) stepvariant $w --recompute --micro 16 --bf16-head ;;
      step-recompute32) stepvariant $w --recompute --micro 32 ;;
      step-exact) MMFT_XLA_EXACT_BF16_DOTS=1 stepvariant $w --recompute --micro 16 ;;
      rollout-exact) MMFT_XLA_EXACT_BF16_DOTS=1 timeout 420 bin/rollout --config $A/config.json --device gpu --reps 2 > "$OUT/rollout-exact.json" 2> "$OUT/rollout-exact.err"; echo "rc=$?"; tail -c 1500 "$OUT/rollout-exact.json" ;;
      alias)
        for a in off on; do
          echo "-- MMFT_XLA_ALIAS=$a"
          rm -rf "/tmp/hlo-$a"
          MMFT_BENCH_CPUPROFILE=$OUT/rollout-alias-$a.pprof MMFT_XLA_ALIAS=$a XLA_FLAGS="$XLA_FLAGS --xla_dump_to=/tmp/hlo-$a --xla_dump_hlo_as_text --xla_dump_hlo_module_re=.*decode.*" \
            timeout 300 bin/rollout --config $A/config.json --device gpu --reps 2 > "$OUT/rollout-alias-$a.json" 2> "$OUT/rollout-alias-$a.err"
          echo "rc=$?"; grep -E '"(warm_new_tokens_per_s|aliased_arguments)"' "$OUT/rollout-alias-$a.json"
          f=$(ls /tmp/hlo-$a/*engine_decode*after_optimizations.txt 2>/dev/null | head -1)
          [[ -n $f ]] && echo "decode HLO: $(grep -c '} copy(' "$f") copies; alias: $(grep -o 'input_output_alias={[^}]*}' "$f" | head -c 160)"
          MMFT_BENCH_CPUPROFILE=$OUT/step-alias-$a.pprof MMFT_XLA_ALIAS=$a stepvariant step-alias-$a --recompute --micro 16
        done ;;
      iteration) timeout 420 bin/grpostep --assets $A --device gpu --mode iteration --n 4 --new 512 --rank 4 --micro 8 --reps 2 > "$OUT/iteration.json" 2> "$OUT/iteration.err"; echo "rc=$?"; tail -c 2500 "$OUT/iteration.json"; tail -5 "$OUT/iteration.err" ;;
    esac
  done
done
