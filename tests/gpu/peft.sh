#!/usr/bin/env bash
# PEFT compatibility of mmft's saved adapters (issue 9, item 1), on the GPU
# machine's Python (transformers + peft; CPU float32 is enough). Build here first:
#   CGO_ENABLED=1 go build -o bin/mmft ./cmd/mmft
#   CGO_ENABLED=1 go build -o bin/peftexport ./tests/gpu/peftexport
#   mkdir -p .carry && cp -r ../shared/fixtures/qwen2vl-tiny .carry/   (.carry is git-ignored)
# then carry bin/ and .carry and run: bash tests/gpu/peft.sh
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
cd "$ROOT"
PY=${PYTHON:-python3}
[[ -x /opt/torch/.venv/bin/python ]] && PY=${PYTHON:-/opt/torch/.venv/bin/python}
BASE=${BASE:-.carry/qwen2vl-tiny}
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
for rs in true false; do
  bin/peftexport --model "$BASE" --out "$WORK/adapter-$rs" --r 8 --alpha 16 --rslora=$rs
  bin/mmft forward --model "$BASE" --inputs "$BASE/reference.safetensors" --adapter "$WORK/adapter-$rs" --out "$WORK/mmft-$rs.safetensors" >/dev/null
  "$PY" tests/gpu/peft_check.py --base "$BASE" --adapter "$WORK/adapter-$rs" --inputs "$BASE/reference.safetensors" --mmft "$WORK/mmft-$rs.safetensors"
done
