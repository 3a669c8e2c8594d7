#!/usr/bin/env bash
# Checks the kernel profiler (bench/kprof): the injection library builds warning-free
# and exports the entry point the CUDA driver calls, and the summary selects a run's
# kernels by its wall-clock window and adds up busy time and gaps correctly.
set -euo pipefail
cd "$(dirname "$0")/../.."
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
gcc -O2 -Wall -Wextra -Werror -shared -fPIC -o "$tmp/libkprof.so" bench/kprof/kprof.c -ldl -lpthread
nm -D "$tmp/libkprof.so" | grep -q ' T InitializeInjection$' || { echo "libkprof.so does not export InitializeInjection"; exit 1; }
# CUPTI clock 1000 is wall time 5 000 000 000 ns. Run 0's window holds the first two
# kernels only; run 1's the last three (a 2 µs and a 6 µs gap between them).
cat > "$tmp/t.csv" <<'CSV'
c,1000,5000000000
n,0,gemm_fusion_dot_1
n,1,loop_add_fusion
k,2000,3000,1,1x1x1,128x1x1,7
k,3000,4000,0,12x1x1,128x1x1,7
k,100000,103000,0,12x1x1,128x1x1,7
k,105000,106000,1,1x1x1,256x1x1,7
k,112000,116000,0,12x1x1,128x1x1,7
m,101000,101500,4096,1,7
CSV
cat > "$tmp/b.json" <<'JSON'
log line before the JSON
{"runs": [{"window": {"start_unix_ns": 5000000500, "end_unix_ns": 5000004000}},
          {"window": {"start_unix_ns": 5000098000, "end_unix_ns": 5000118000}}]}
JSON
python3 bench/kprof/summarize.py "$tmp/t.csv" "$tmp/b.json" --per 2 > "$tmp/out.txt"
cat "$tmp/out.txt"
check() { grep -qF -- "$1" "$tmp/out.txt" || { echo "summary lacks: $1"; exit 1; }; }
check "3 kernels (1.5 per unit), GPU busy 0.01 ms"
check "idle gaps: 2 totalling 0.01 ms"
check "5–20 µs: 1 (0.01 ms)"
check "matrix product         1.0     0.004"
check "memory copies: 1"
echo "kprof: ok"
