#!/usr/bin/env python3
"""Loom's GEMM kernels beside NumPy/OpenBLAS on the reference model's shapes, one thread each, in one sitting.

A shared machine can be 20% slower from one minute to the next, so two separate commands do not compare. This
script pins itself (and the `loom` it starts) to one CPU and alternates `loom bench kernels` with the same
products in NumPy, `--rounds` times; each side keeps its best per shape. OpenBLAS gets one thread and picks its
own kernels (OPENBLAS_CORETYPE and OPENBLAS_L2_SIZE are unset for it; the script re-executes itself so).

    python3 Benchmarks/reference/kernels_vs_openblas.py [--loom .build/release/loom] [--cpu 1] [--rounds 5]
"""
import argparse
import json
import os
import subprocess
import sys
import tempfile

if os.environ.get("OPENBLAS_NUM_THREADS") != "1" or "OPENBLAS_CORETYPE" in os.environ or "OPENBLAS_L2_SIZE" in os.environ:
    env = {k: v for k, v in os.environ.items() if k not in ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE")}
    env["OPENBLAS_NUM_THREADS"] = "1"
    os.execve(sys.executable, [sys.executable] + sys.argv, env)

from numpy_gemm import SHAPES, gflops  # noqa: E402  (after the environment is settled: OpenBLAS reads it as NumPy loads)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--loom", default=".build/release/loom")
    parser.add_argument("--cpu", type=int, default=max(os.sched_getaffinity(0)))
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    os.sched_setaffinity(0, {args.cpu})
    loom = {name: 0.0 for name, *_ in SHAPES}
    blas = dict(loom)
    with tempfile.TemporaryDirectory() as tmp:
        for _ in range(args.rounds):
            out = os.path.join(tmp, "k.json")
            subprocess.run([args.loom, "bench", "kernels", "--workers", "1", "--json", out], check=True,
                           stdout=subprocess.DEVNULL)
            with open(out) as f:
                for row in json.load(f):
                    loom[row["name"]] = max(loom[row["name"]], row["gflops_single"])
            for name, m, n, k, ta, tb in SHAPES:
                blas[name] = max(blas[name], gflops(m, n, k, ta, tb))
    print(f"CPU {args.cpu}, best of {args.rounds} alternating rounds (GFLOP/s, one thread)")
    print(f"| {'shape':32} | {'M×N×K':12} | {'Loom':>6} | {'OpenBLAS':>8} | {'ratio':>5} |")
    print(f"|{'-' * 34}|{'-' * 14}|{'-' * 8}|{'-' * 10}|{'-' * 7}|")
    for name, m, n, k, _, _ in SHAPES:
        print(f"| {name:32} | {f'{m}×{n}×{k}':12} | {loom[name]:6.1f} | {blas[name]:8.1f} | {loom[name] / blas[name]:5.2f} |")


if __name__ == "__main__":
    main()
