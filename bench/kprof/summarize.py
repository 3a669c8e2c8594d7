#!/usr/bin/env python3
"""Summarize a kprof kernel trace (bench/kprof/kprof.c) over one benchmark repetition.

    python3 bench/kprof/summarize.py TRACE.csv BENCH.json [--run -1] [--per N] [--top 40]

BENCH.json is bench/rollout's or bench/grpostep's output: its runs carry a wall-clock
window; the kernels that started inside the chosen run's window are summarized:
GPU-busy time against the window, kernels by name (count, total, mean, share), by
kind (matrix products, fusions, copies, ...), and the gaps between kernels (time the
GPU waited on the host). --per N divides the counts and times by N (e.g. the decode
steps of the run) to read them per step. Standard library only (runs on the GPU machine).
"""
import argparse
import collections
import csv
import json
import sys


def kind(name):
    n = name.lower()
    if any(s in n for s in ("gemm", "cutlass", "xmma", "cublas", "sm90", "sm80", "_mma", "matmul", "dot")):
        return "matrix product"
    if "scatter" in n:
        return "scatter"
    if "reduce" in n or "softmax" in n:
        return "reduction"
    if "transpose" in n or "copy" in n:
        return "copy/transpose"
    if "fusion" in n or "triton" in n:
        return "other fusion"
    return "other"


def main():
    try:
        summarize()
    except (OSError, ValueError, KeyError, IndexError, TypeError) as e:
        sys.exit(f"summarize: {e.__class__.__name__}: {e} (want a kprof trace CSV and a bench/rollout or bench/grpostep JSON with runs[].window)")
    except KeyboardInterrupt:
        sys.exit("summarize: interrupted")


def summarize():
    ap = argparse.ArgumentParser()
    ap.add_argument("trace")
    ap.add_argument("bench")
    ap.add_argument("--run", type=int, default=-1, help="which run of the benchmark (default: the last)")
    ap.add_argument("--per", type=float, default=1.0, help="divide counts and times by this (e.g. decode steps)")
    ap.add_argument("--top", type=int, default=40)
    a = ap.parse_args()
    if not a.per > 0:
        sys.exit(f"summarize: --per {a.per}: want a positive number (e.g. the run's decode steps)")

    with open(a.bench) as f:
        text = f.read()
    bench = json.loads(text[text.index("{"):])
    run = bench["runs"][a.run]
    w0, w1 = run["window"]["start_unix_ns"], run["window"]["end_unix_ns"]

    names, kernels, copies, offset = {}, [], [], None
    with open(a.trace, newline="") as f:
        for row in csv.reader(f):
            if not row:
                continue
            if row[0] == "c" and offset is None:
                offset = int(row[2]) - int(row[1])
            elif row[0] == "n":
                names[int(row[1])] = ",".join(row[2:])
            elif row[0] == "k" and len(row) >= 7:
                kernels.append((int(row[1]), int(row[2]), int(row[3]), row[4], row[5]))
            elif row[0] == "m" and len(row) >= 6:
                copies.append((int(row[1]), int(row[2]), int(row[3]), int(row[4])))
    if offset is None:
        sys.exit(f"summarize: {a.trace}: no clock line (not a kprof trace)")
    ks = sorted(k for k in kernels if w0 <= k[0] + offset <= w1)
    cs = [c for c in copies if w0 <= c[0] + offset <= w1]
    if not ks:
        sys.exit(f"no kernels inside run {a.run}'s window ({len(kernels)} in the trace)")
    per = a.per
    wall = (w1 - w0) / 1e6
    busy = 0.0
    end = ks[0][0]
    gaps = []
    for s, e, *_ in ks:  # union of kernel intervals (one stream in practice)
        if s > end:
            gaps.append(s - end)
        busy += max(0, e - max(s, end))
        end = max(end, e)
    busy /= 1e6
    print(f"run {a.run}: window {wall:.2f} ms, {len(ks)} kernels ({len(ks)/per:.1f} per unit), "
          f"GPU busy {busy:.2f} ms ({100*busy/wall:.1f} %), idle gaps: {len(gaps)} totalling {sum(gaps)/1e6:.2f} ms "
          f"(> 20 µs: {sum(1 for g in gaps if g > 20000)})")
    if per != 1:
        print(f"per unit (÷{per:g}): window {wall/per:.3f} ms, busy {busy/per:.3f} ms")
    edges = [0, 5e3, 20e3, 100e3, 1e6, 1e12]
    print("idle gaps by length: " + ", ".join(
        f"{lo/1e3:g}–{hi/1e3:g} µs: {sum(1 for g in gaps if lo <= g < hi)} ({sum(g for g in gaps if lo <= g < hi)/1e6:.2f} ms)"
        for lo, hi in zip(edges, edges[1:])))
    big = sorted(((s - e0, i) for i, ((_, e0, *_), (s, *_)) in enumerate(zip(ks, ks[1:]))), reverse=True)[:8]
    for g, i in big:
        print(f"  gap {g/1e3:9.1f} µs after {names.get(ks[i][2], '?')[:60]} before {names.get(ks[i+1][2], '?')[:60]}")
    by = collections.defaultdict(lambda: [0, 0])
    bykind = collections.defaultdict(lambda: [0, 0])
    shapes = collections.defaultdict(set)
    for s, e, i, g, b in ks:
        n = names.get(i, f"#{i}")
        by[n][0] += 1
        by[n][1] += e - s
        bykind[kind(n)][0] += 1
        bykind[kind(n)][1] += e - s
        shapes[n].add(g + "/" + b)
    print("\nby kind: count per unit, ms per unit, share of busy")
    for k, (c, t) in sorted(bykind.items(), key=lambda x: -x[1][1]):
        print(f"  {k:16s} {c/per:9.1f} {t/1e6/per:9.3f} {100*t/1e6/busy:6.1f} %")
    print(f"\ntop {a.top} kernels: count per unit, µs per unit, mean µs, share, grid/block, name")
    for n, (c, t) in sorted(by.items(), key=lambda x: -x[1][1])[: a.top]:
        sh = ",".join(sorted(shapes[n])[:2])
        print(f"  {c/per:8.1f} {t/1e3/per:10.1f} {t/1e3/c:8.2f} {100*t/1e6/busy:5.1f}%  {sh:28s} {n[:150]}")
    if cs:
        tot = sum(c[2] for c in cs)
        t = sum(c[1] - c[0] for c in cs) / 1e6
        kinds = collections.Counter(c[3] for c in cs)
        print(f"\nmemory copies: {len(cs)} ({len(cs)/per:.1f} per unit), {tot/1e6:.2f} MB, {t:.2f} ms; by CUPTI copy kind: {dict(kinds)}")


if __name__ == "__main__":
    main()
