#!/usr/bin/env bash
# One GPU call: issue 8 item 15 (bf16 parity no farther from float32 truth than transformers' bf16),
# issue 9 item 1 (PEFT loads mmft's adapters with the same logits), issue 11 item 4 (mesh of one).
# Carry .carry (bin.tar.xz with mmft, gpu-compare, peftexport, bench-fsdp; qwen2vl-tiny; assets).
set -uo pipefail
cd "$(dirname "$0")/../.."
OUT=${OUT:-/tmp/mmft-final}; mkdir -p "$OUT"
[[ -x bin/mmft ]] || python3 -c "import tarfile; tarfile.open('.carry/bin.tar.xz').extractall('.')"
export GOPJRT_CUDA_CHECKS=0
W=$(mktemp -d)
echo "== parity $(date -u +%T)"
timeout 300 python3 tests/gpu/parity_qwen2vl.py --config .carry/assets/config.json --out "$W" > "$OUT/parity-ref.log" 2>&1; echo "ref rc=$?"; tail -3 "$OUT/parity-ref.log"
timeout 200 bin/gpu-compare --dir "$W" --device gpu --dtype bf16 --ref logits_f32 2>&1 | tee "$OUT/parity.txt"; echo "compare rc=${PIPESTATUS[0]}"
echo "== peft $(date -u +%T)"
BASE=.carry/qwen2vl-tiny timeout 300 bash tests/gpu/peft.sh 2>&1 | tee "$OUT/peft.txt" | tail -8; echo "peft rc=${PIPESTATUS[0]}"
echo "== fsdp mesh of one $(date -u +%T)"
timeout 400 bash bench/fsdp/run.sh 1 2>&1 | tee "$OUT/fsdp.txt" | tail -25; echo "fsdp rc=${PIPESTATUS[0]}"
