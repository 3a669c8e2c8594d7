#!/usr/bin/env bash
# session 7 call 3: the step after the vision plan reuses its pixel buffers and zeros are made on the device; a Go execution trace and the collector's log (GODEBUG=gctrace=1) of the default step; exact bf16 dots; bf16 head; kernel profile (exact dots).
# optimized HLO of its programs; the step with MMFT_XLA_EXACT_BF16_DOTS=1 (bf16 tensor-core products for the
# float32 products of widened bf16 values), with and without the bf16 head; the step with XLA's Triton GEMMs off.
R=$OUT; rm -rf /tmp/c; mkdir -p /tmp/c; cd "$(dirname "$0")/../../.."
python3 -c "import tarfile; tarfile.open('.carry/bin.tar.xz').extractall('.')"
export GOPJRT_CUDA_CHECKS=0 A=.carry/assets
export XLA_FLAGS="--xla_gpu_per_fusion_autotune_cache_dir=/tmp/xla-autotune"
st() { local n=$1; shift; echo "== $n $(date -u +%T) exact=${MMFT_XLA_EXACT_BF16_DOTS:-} flags=$XLA_FLAGS"; ( while sleep 0.1; do nvidia-smi --query-gpu=memory.used --format=csv,noheader,nounits; done ) > /tmp/c/$n.mem 2>/dev/null & SM=$!
  timeout ${ST_TIMEOUT:-150} bin/grpostep --assets $A --device gpu --mode step --reps 3 "$@" > /tmp/c/$n.json 2> /tmp/c/$n.err; echo "rc=$?"; kill $SM
  python3 -c "import json; t=open('/tmp/c/$n.json').read(); d=json.loads(t[t.index('{'):]); print('compile_s', round(d['compile_s'],1), 'sync', d.get('xla_sync'), 'exact', d.get('exact_bf16_dots'), 'mem', d.get('device_memory')); [print(round(r['seconds'],3), 'loss', r['loss'], 'gn', r['grad_norm'], json.dumps({k:(v['calls'],round(v['ms_in_backend'])) for k,v in r['host'].items()})) for r in d['runs']]" 2>&1 | tail -5; tail -2 /tmp/c/$n.err; echo "nvidia-smi peak MiB $(sort -n /tmp/c/$n.mem | tail -1)"; }
{
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
for v in ${S7C:-step exact exactbf16 profexact}; do case $v in
  prof) echo "== prof $(date -u +%T)"; OUT=/tmp/c/prof timeout 200 bash tests/gpu/profile.sh step ;;
  exact) MMFT_XLA_EXACT_BF16_DOTS=1 st exact --recompute --micro 16 ;;
  exactbf16) MMFT_XLA_EXACT_BF16_DOTS=1 st exact-bf16 --recompute --micro 16 --bf16-head ;;
  notriton) XLA_FLAGS="$XLA_FLAGS --xla_gpu_enable_triton_gemm=false" st notriton --recompute --micro 16 ;;
  step) GODEBUG=gctrace=1 MMFT_BENCH_TRACE=/tmp/c/step.trace MMFT_BENCH_CPUPROFILE=/tmp/c/step.pprof st step --recompute --micro 16 ;;
  profexact) echo "== profexact $(date -u +%T)"; MMFT_XLA_EXACT_BF16_DOTS=1 OUT=/tmp/c/prof timeout 200 bash tests/gpu/profile.sh step ;;
  peer) echo "== peer $(date -u +%T)"; timeout 200 python3 .carry/hf_grpo_baseline.py > /tmp/c/peer.jsonl 2> /tmp/c/peer.err; echo "rc=$?"; grep figure /tmp/c/peer.jsonl ;;
esac; done
} 2>&1 | tee $R/s7c.log
tar -C /tmp -cJf $R/s7c-raw.tar.xz c
