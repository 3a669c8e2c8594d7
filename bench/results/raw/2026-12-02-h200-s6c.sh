#!/usr/bin/env bash
# session 6 call 4: asynchronous dispatch (patched go-xla) + flat grouped layer: GRPO step async and sync (same losses?), rollout, peer.
R=$OUT; rm -rf /tmp/c; mkdir -p /tmp/c; cd "$(dirname "$0")/.."
python3 -c "import tarfile; tarfile.open('.carry/bin.tar.xz').extractall('.')"
export GOPJRT_CUDA_CHECKS=0 A=.carry/assets
export XLA_FLAGS="--xla_gpu_per_fusion_autotune_cache_dir=/tmp/xla-autotune"
summ() { python3 -c "import json,sys; t=open('/tmp/c/$1.json').read(); d=json.loads(t[t.index('{'):]); print(round(d['warm_new_tokens_per_s']), 'ms/step', d['runs'][-1]['ms_per_step'], 'compile_s', round(d['compile_s'],1), 'first_s', round(d['runs'][0]['first_completion_s'],1), 'sync', d.get('xla_sync'), 'mem', d.get('device_memory')); print(json.dumps({k:(v['calls'],round(v['ms_in_backend'])) for k,v in d['runs'][-1]['host'].items()}))" 2>&1 | tail -3; }
ro() { local n=$1; shift; echo "== $n $(date -u +%T)"; timeout 170 bin/rollout --config $A/config.json --device gpu --reps 2 "$@" > /tmp/c/$n.json 2> /tmp/c/$n.err; echo "rc=$?"; summ $n; tail -2 /tmp/c/$n.err; }
st() { local n=$1; shift; echo "== $n $(date -u +%T) sync=${MMFT_XLA_SYNC:-}"; ( while sleep 0.1; do nvidia-smi --query-gpu=memory.used --format=csv,noheader,nounits; done ) > /tmp/c/$n.mem 2>/dev/null & SM=$!
  timeout 200 bin/grpostep --assets $A --device gpu --mode step --reps 3 "$@" > /tmp/c/$n.json 2> /tmp/c/$n.err; echo "rc=$?"; kill $SM
  python3 -c "import json; t=open('/tmp/c/$n.json').read(); d=json.loads(t[t.index('{'):]); print('compile_s', round(d['compile_s'],1), 'sync', d.get('xla_sync'), 'mem', d.get('device_memory')); [print(round(r['seconds'],3), 'loss', r['loss'], 'gn', r['grad_norm'], json.dumps({k:(v['calls'],round(v['ms_in_backend'])) for k,v in r['host'].items()})) for r in d['runs']]" 2>&1 | tail -5; tail -2 /tmp/c/$n.err; echo "nvidia-smi peak MiB $(sort -n /tmp/c/$n.mem | tail -1)"; }
{
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
for v in ${S6C:-step stepsync base peer}; do case $v in
  step) st step --recompute --micro 16 ;;
  stepsync) MMFT_XLA_SYNC=1 st step-sync --recompute --micro 16 ;;
  stepbf16) st step-bf16 --recompute --micro 16 --bf16-head ;;
  base) ro base ;;
  peer) echo "== peer $(date -u +%T)"; timeout 200 python3 .carry/hf_grpo_baseline.py > /tmp/c/peer.jsonl 2> /tmp/c/peer.err; echo "rc=$?"; grep figure /tmp/c/peer.jsonl ;;
esac; done
} 2>&1 | tee $R/s6c.log
tar -C /tmp -cJf $R/s6c-raw.tar.xz c
