#!/usr/bin/env bash
# session 6 call 1: the host-side changes of session 5 measured (rollouts, step, peer).
R=$OUT; mkdir -p /tmp/c; cd "$(dirname "$0")/.."
python3 -c "import tarfile; tarfile.open('.carry/bin.tar.xz').extractall('.')"
export GOPJRT_CUDA_CHECKS=0 A=.carry/assets
export XLA_FLAGS="--xla_gpu_per_fusion_autotune_cache_dir=/tmp/xla-autotune"
PY=python3; [[ -x /opt/torch/.venv/bin/python ]] && PY=/opt/torch/.venv/bin/python
summ() { python3 -c "import json,sys; t=open('/tmp/c/$1.json').read(); d=json.loads(t[t.index('{'):]); print(round(d['warm_new_tokens_per_s']), 'ms/step', d['runs'][-1]['ms_per_step'], 'aliased', d.get('aliased_arguments'), 'compile_s', round(d['compile_s'],1), 'first_s', round(d['runs'][0]['first_completion_s'],1)); print(json.dumps(d['runs'][-1].get('host')))" 2>&1 | tail -3; }
ro() { local n=$1; shift; echo "== $n $(date -u +%T)"; MMFT_BENCH_CPUPROFILE=/tmp/c/$n.pprof timeout 170 bin/rollout --config $A/config.json --device gpu --reps 2 "$@" > /tmp/c/$n.json 2> /tmp/c/$n.err; echo "rc=$?"; summ $n; tail -2 /tmp/c/$n.err; }
{
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
for v in ${S6A:-base shared step peer}; do case $v in
  parity) echo "== parity $(date -u +%T)"; timeout 150 $PY tests/gpu/parity_qwen2vl.py --config bin/qwen2-vl-2b-config.json --out /tmp/par > /tmp/c/parity-ref.txt 2>&1; echo "ref rc=$?"; tail -2 /tmp/c/parity-ref.txt
    timeout 90 bin/gpu-compare --dir /tmp/par --device gpu --dtype bf16 --ref logits_f32 2>&1 | tail -6; echo "bound rc=${PIPESTATUS[0]}" ;;
  shared) ro shared --shared-prefix ;;
  base) ro base ;;
  shared16) ro shared16 --shared-prefix --steps-per-call 16 ;;
  step) echo "== step $(date -u +%T)"; ( while sleep 0.1; do nvidia-smi --query-gpu=memory.used --format=csv,noheader,nounits; done ) > /tmp/c/step.mem 2>/dev/null & SM=$!; MMFT_BENCH_CPUPROFILE=/tmp/c/step.pprof timeout 170 bin/grpostep --assets $A --device gpu --mode step --reps 3 --recompute --micro 16 > /tmp/c/step.json 2> /tmp/c/step.err; echo "rc=$?"
    python3 -c "import json; d=json.loads(open('/tmp/c/step.json').read()); [print(round(r['seconds'],3), json.dumps({k:(v['calls'],round(v['ms_in_backend'])) for k,v in r['host'].items()})) for r in d['runs']]" 2>&1 | tail -3; tail -2 /tmp/c/step.err; kill $SM; echo "step peak MiB $(sort -n /tmp/c/step.mem | tail -1)" ;;
  peer) echo "== peer $(date -u +%T)"; timeout 200 python3 .carry/hf_grpo_baseline.py > /tmp/c/peer.jsonl 2> /tmp/c/peer.err; echo "rc=$?"; grep figure /tmp/c/peer.jsonl ;;
esac; done
} 2>&1 | tee $R/s6a.log
tar -C /tmp -cJf $R/s6a-raw.tar.xz c
