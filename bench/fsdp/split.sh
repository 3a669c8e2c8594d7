#!/usr/bin/env bash
# The split layout end to end on a machine with 2 or more GPUs (issue 11 items 1-3; the GPU machine has no Go).
# Build here and carry bin/:
#   CGO_ENABLED=1 go build -ldflags="-s -w" -o bin/mmft ./cmd/mmft
#   CGO_ENABLED=1 go test -c -o bin/mmft.test ./mmft
# then run:  bash bench/fsdp/split.sh
# 1. TestSplitLayoutOnDevices: the embedded model in float32, colocated on GPU 0 against the seed's default split
#    (rollouts on the last GPU, FSDP training on the others): adapters within 1e-6 relative (a training mesh of
#    one, 3 steps) or 1e-5 (a larger mesh, 1 step); one device-to-device sync per step with the adapter's bytes.
# 2. mmft train colocated and split, 4 steps each: the plan, the first sync line, and per step step_s, update_s,
#    rollout_s, sync_bytes, sync_s from metrics.jsonl. Exit 1 when any part fails.
set -uo pipefail
cd "$(dirname "$0")/../.."
export GOPJRT_CUDA_CHECKS=0
W=$(mktemp -d)
nvidia-smi --query-gpu=index,name,memory.total,driver_version --format=csv,noheader
N=$(nvidia-smi --query-gpu=index --format=csv,noheader | wc -l)
rc=0
echo "== TestSplitLayoutOnDevices ($N GPUs) $(date -u +%T)"
MMFT_DEVICE=gpu timeout 540 bin/mmft.test -test.run 'TestSplitLayoutOnDevices$' -test.v -test.count=1 || rc=1
for run in colocated split; do
  flags=()
  [[ $run == colocated ]] && flags=(--rollout-gpus 0 --train-gpus 0)
  echo "== mmft train $run ${flags[*]} $(date -u +%T)"
  timeout 540 bin/mmft train --device gpu --steps 4 --batch-size 2 --num-generations 4 --quiet \
    --output-dir "$W/$run" "${flags[@]}" || rc=1
  python3 - "$W/$run/metrics.jsonl" <<'PY' || rc=1
import json, sys
for line in open(sys.argv[1]):
    m = json.loads(line)
    print({k: round(m[k], 4) for k in ("step", "step_s", "rollout_s", "update_s", "sync_bytes", "sync_s", "adapter_lag", "reward") if k in m})
PY
done
exit $rc
