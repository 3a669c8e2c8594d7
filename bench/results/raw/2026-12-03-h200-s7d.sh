#!/usr/bin/env bash
# session 7 call 4 (final): the step (default: float32 head), with the bf16 head and exact bf16 dots, with the bf16 head only; the
# HF+PEFT peer in the same call; the parity bound with MMFT_XLA_EXACT_BF16_DOTS=1. Binary of the vision-plan rotary-table cache.
R=$OUT; rm -rf /tmp/c; mkdir -p /tmp/c; cd "$(dirname "$0")/../../.."
python3 -c "import tarfile; tarfile.open('.carry/bin.tar.xz').extractall('.')"
export GOPJRT_CUDA_CHECKS=0 A=.carry/assets
export XLA_FLAGS="--xla_gpu_per_fusion_autotune_cache_dir=/tmp/xla-autotune"
PY=python3; [[ -x /opt/torch/.venv/bin/python ]] && PY=/opt/torch/.venv/bin/python
st() { local n=$1; shift; echo "== $n $(date -u +%T) exact=${MMFT_XLA_EXACT_BF16_DOTS:-} flags=$XLA_FLAGS"; ( while sleep 0.1; do nvidia-smi --query-gpu=memory.used --format=csv,noheader,nounits; done ) > /tmp/c/$n.mem 2>/dev/null & SM=$!
  timeout ${ST_TIMEOUT:-150} bin/grpostep --assets $A --device gpu --mode step --reps 3 "$@" > /tmp/c/$n.json 2> /tmp/c/$n.err; echo "rc=$?"; kill $SM
  python3 -c "import json; t=open('/tmp/c/$n.json').read(); d=json.loads(t[t.index('{'):]); print('compile_s', round(d['compile_s'],1), 'sync', d.get('xla_sync'), 'exact', d.get('exact_bf16_dots'), 'mem', d.get('device_memory')); [print(round(r['seconds'],3), 'loss', r['loss'], 'gn', r['grad_norm'], json.dumps({k:(v['calls'],round(v['ms_in_backend'])) for k,v in r['host'].items()})) for r in d['runs']]" 2>&1 | tail -5; tail -2 /tmp/c/$n.err; echo "nvidia-smi peak MiB $(sort -n /tmp/c/$n.mem | tail -1)"; }
{
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
for v in ${S7D:-step exactbf16 peer parityexact bf16}; do case $v in
  prof) echo "== prof $(date -u +%T)"; OUT=/tmp/c/prof timeout 200 bash tests/gpu/profile.sh step ;;
  exact) MMFT_XLA_EXACT_BF16_DOTS=1 st exact --recompute --micro 16 ;;
  exactbf16) MMFT_XLA_EXACT_BF16_DOTS=1 st exact-bf16 --recompute --micro 16 --bf16-head ;;
  notriton) XLA_FLAGS="$XLA_FLAGS --xla_gpu_enable_triton_gemm=false" st notriton --recompute --micro 16 ;;
  step) st step --recompute --micro 16 ;;
  bf16) ST_TIMEOUT=100 st bf16 --recompute --micro 16 --bf16-head ;;
  parityexact) echo "== parity exact $(date -u +%T)"; timeout 150 $PY tests/gpu/parity_qwen2vl.py --config bin/qwen2-vl-2b-config.json --out /tmp/par > /tmp/c/parity-ref.txt 2>&1; echo "ref rc=$?"; tail -2 /tmp/c/parity-ref.txt
    MMFT_XLA_EXACT_BF16_DOTS=1 timeout 100 bin/gpu-compare --dir /tmp/par --device gpu --dtype bf16 --ref logits_f32 2>&1 | tail -6; echo "bound rc=${PIPESTATUS[0]}" ;;
  profexact) echo "== profexact $(date -u +%T)"; MMFT_XLA_EXACT_BF16_DOTS=1 OUT=/tmp/c/prof timeout 200 bash tests/gpu/profile.sh step ;;
  peer) echo "== peer $(date -u +%T)"; timeout 200 python3 .carry/hf_grpo_baseline.py > /tmp/c/peer.jsonl 2> /tmp/c/peer.err; echo "rc=$?"; grep figure /tmp/c/peer.jsonl ;;
esac; done
} 2>&1 | tee $R/s7d.log
tar -C /tmp -cJf $R/s7d-raw.tar.xz c
