#!/usr/bin/env bash
# GPU parity and prefill benchmark for Qwen2-VL-2B, in one call on the GPU machine
# (which has no Go toolchain). Build here first:
#   CGO_ENABLED=1 go build -ldflags="-s -w" -o bin/gpu-compare ./tests/gpu/compare
#   CGO_ENABLED=1 go build -ldflags="-s -w" -o bin/bench-prefill ./bench/prefill
#   cp ../shared/assets/qwen2-vl-2b-instruct/config.json bin/qwen2-vl-2b-config.json
# then carry bin/ and run: bash tests/gpu/run.sh
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
cd "$ROOT"
PY=${PYTHON:-python3}
[[ -x /opt/torch/.venv/bin/python ]] && PY=${PYTHON:-/opt/torch/.venv/bin/python}
CONFIG=${CONFIG:-bin/qwen2-vl-2b-config.json}
[[ -f $CONFIG ]] || CONFIG=${MMFT_SHARED:-$ROOT/../shared}/assets/qwen2-vl-2b-instruct/config.json
WORK=${WORK:-$(mktemp -d)}
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
echo "== reference (transformers, random bf16 2B weights) -> $WORK"
"$PY" tests/gpu/parity_qwen2vl.py --config "$CONFIG" --out "$WORK"
echo "== mmft forward parity (GPU, bf16)"
bin/gpu-compare --dir "$WORK" --device gpu --dtype f32 --ref logits_f32 --check=false   # implementation check (XLA f32 dots use TF32)
bin/gpu-compare --dir "$WORK" --device gpu --dtype bf16 --ref logits --check=false       # against transformers' own bf16
bin/gpu-compare --dir "$WORK" --device gpu --dtype bf16 --ref logits_f32 || echo "PARITY BOUND FAILED (see above)"  # the bound: no farther from float32 truth than transformers bf16
echo "== prefill benchmark: mmft"
( while sleep 0.2; do nvidia-smi --query-gpu=memory.used --format=csv,noheader,nounits; done ) > "$WORK/gpumem.txt" 2>/dev/null &
SAMPLER=$!
bin/bench-prefill --config "$CONFIG" --device gpu
kill "$SAMPLER" 2>/dev/null || true
echo "mmft peak GPU memory used (nvidia-smi, MiB, whole process, XLA preallocation off: BFC pool high-water mark incl. CUDA context): $(sort -n "$WORK/gpumem.txt" | tail -1)"
echo "== prefill benchmark: transformers"
"$PY" bench/prefill/bench_transformers.py --config "$CONFIG"
if [[ -x bin/bench-prefill-old ]]; then
  echo "== prefill benchmark: mmft before this change (bin/bench-prefill-old, same device)"
  bin/bench-prefill-old --config "$CONFIG" --device gpu
fi
