#!/usr/bin/env bash
# ZeRO-3/FSDP training-step check for Qwen2-VL-2B on the GPU machine (which has no Go toolchain).
# Build here first:
#   CGO_ENABLED=1 go build -ldflags="-s -w" -o bin/bench-fsdp ./bench/fsdp
#   cp ../shared/assets/qwen2-vl-2b-instruct/config.json bin/qwen2-vl-2b-config.json
# then carry bin/ and run:  bash bench/fsdp/run.sh 1      (one GPU: unsharded vs a mesh of one)
#                           bash bench/fsdp/run.sh all    (N GPUs: unsharded vs meshes of 1…N)
# Extra arguments go to the bench (e.g. --seqs 16 --len 512). Exit 1 when a mesh of one differs from
# the unsharded step by more than 1e-6 (relative, float32 adapters) or a larger mesh by more than --tol.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
cd "$ROOT"
CONFIG=${CONFIG:-bin/qwen2-vl-2b-config.json}
[[ -f $CONFIG ]] || CONFIG=${MMFT_SHARED:-$ROOT/../shared}/assets/qwen2-vl-2b-instruct/config.json
MESHES=${1:-all}
shift || true
nvidia-smi --query-gpu=index,name,memory.total,driver_version --format=csv,noheader
WORK=$(mktemp -d)
( while sleep 0.2; do nvidia-smi --query-gpu=index,memory.used --format=csv,noheader,nounits; done ) > "$WORK/gpumem.txt" 2>/dev/null &
SAMPLER=$!
trap 'kill $SAMPLER 2>/dev/null || true' EXIT
rc=0
bin/bench-fsdp --config "$CONFIG" --device gpu --meshes "$MESHES" "$@" || rc=$?
kill "$SAMPLER" 2>/dev/null || true
echo "peak memory used per GPU (nvidia-smi, MiB, whole process, XLA preallocation off):"
sort -t, -k1,1n -k2,2n "$WORK/gpumem.txt" | awk -F', ' '{peak[$1]=$2} END {for (g in peak) print "  GPU " g ": " peak[g]}' | sort
exit $rc
