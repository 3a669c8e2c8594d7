#!/usr/bin/env bash
# GPU parity and prefill benchmark for Qwen2-VL-2B, in one call (run from the
# repository root on the GPU machine; needs torch + transformers 5.17 + safetensors).
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
cd "$ROOT"
SHARED=${MMFT_SHARED:-$ROOT/../shared}
CONFIG=$SHARED/assets/qwen2-vl-2b-instruct/config.json
WORK=${WORK:-$(mktemp -d)}
echo "== reference (transformers, random bf16 2B weights) -> $WORK"
python3 tests/gpu/parity_qwen2vl.py --config "$CONFIG" --out "$WORK"
echo "== mmft forward parity (GPU, bf16)"
go run ./tests/gpu/compare --dir "$WORK" --device gpu
echo "== prefill benchmark: mmft"
( while sleep 0.5; do nvidia-smi --query-gpu=memory.used --format=csv,noheader,nounits; done ) > "$WORK/gpumem.txt" 2>/dev/null &
SAMPLER=$!
go run ./bench/prefill --config "$CONFIG" --device gpu
kill "$SAMPLER" 2>/dev/null || true
echo "mmft peak GPU memory used (nvidia-smi, MiB): $(sort -n "$WORK/gpumem.txt" | tail -1)"
echo "== prefill benchmark: transformers"
python3 bench/prefill/bench_transformers.py --config "$CONFIG"
