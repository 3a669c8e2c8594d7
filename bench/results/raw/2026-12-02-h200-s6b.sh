#!/usr/bin/env bash
# session 6 call 3: command buffers off (XLA_FLAGS) for the GRPO step and the rollout.
R=$OUT; mkdir -p /tmp/c; cd "$(dirname "$0")/.."
[[ -x bin/rollout ]] || python3 -c "import tarfile; tarfile.open('.carry/bin.tar.xz').extractall('.')"
export GOPJRT_CUDA_CHECKS=0 A=.carry/assets
export XLA_FLAGS="--xla_gpu_per_fusion_autotune_cache_dir=/tmp/xla-autotune ${EXTRA_XLA:-}"
summ() { python3 -c "import json,sys; t=open('/tmp/c/$1.json').read(); d=json.loads(t[t.index('{'):]); print(round(d['warm_new_tokens_per_s']), 'ms/step', d['runs'][-1]['ms_per_step'], 'compile_s', round(d['compile_s'],1), 'first_s', round(d['runs'][0]['first_completion_s'],1)); print(json.dumps({k:(v['calls'],round(v['ms_in_backend'])) for k,v in d['runs'][-1]['host'].items()}))" 2>&1 | tail -3; }
ro() { local n=$1; shift; echo "== $n $(date -u +%T) XLA_FLAGS=$XLA_FLAGS"; timeout 170 bin/rollout --config $A/config.json --device gpu --reps 2 "$@" > /tmp/c/$n.json 2> /tmp/c/$n.err; echo "rc=$?"; summ $n; tail -2 /tmp/c/$n.err; }
st() { local n=$1; shift; echo "== $n $(date -u +%T) XLA_FLAGS=$XLA_FLAGS"; ( while sleep 0.1; do nvidia-smi --query-gpu=memory.used --format=csv,noheader,nounits; done ) > /tmp/c/$n.mem 2>/dev/null & SM=$!
  timeout 200 bin/grpostep --assets $A --device gpu --mode step --reps 3 "$@" > /tmp/c/$n.json 2> /tmp/c/$n.err; echo "rc=$?"; kill $SM
  python3 -c "import json; t=open('/tmp/c/$n.json').read(); d=json.loads(t[t.index('{'):]); print('compile_s', round(d['compile_s'],1)); [print(round(r['seconds'],3), json.dumps({k:(v['calls'],round(v['ms_in_backend'])) for k,v in r['host'].items()})) for r in d['runs']]" 2>&1 | tail -4; tail -2 /tmp/c/$n.err; echo "peak MiB $(sort -n /tmp/c/$n.mem | tail -1)"; }
{
for v in ${S6B:-step base}; do case $v in
  step) st step-nocb --recompute --micro 16 ;;
  base) ro base-nocb ;;
  shared) ro shared-nocb --shared-prefix ;;
  stepx) st step-x --recompute --micro 16 ;;
  r64) ro rollout64 --prompts 64 --new 512 ;;
  peer) echo "== peer $(date -u +%T)"; timeout 200 python3 .carry/hf_grpo_baseline.py > /tmp/c/peer.jsonl 2> /tmp/c/peer.err; echo "rc=$?"; grep figure /tmp/c/peer.jsonl ;;
  stepcb) EXTRA_XLA= ; XLA_FLAGS="--xla_gpu_per_fusion_autotune_cache_dir=/tmp/xla-autotune"; st step-cb --recompute --micro 16 ;;
esac; done
} 2>&1 | tee $R/s6b-${S6B// /-}.log
tar -C /tmp -cJf $R/s6b-${S6B// /-}-raw.tar.xz c
