#!/usr/bin/env python3
"""GFLOP/s of NumPy/OpenBLAS on the reference model's GEMM shapes, to set beside `loom bench kernels`.
The transposed forms are transposed views, as Loom reads them. One thread; unset OpenBLAS's core-type override
for this command alone so it picks its best kernels:

    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE OPENBLAS_NUM_THREADS=1 python3 Benchmarks/reference/numpy_gemm.py
"""
import time

import numpy as np

SHAPES = [  # name, m, n, k, A transposed, B transposed
    ("forward X·W", 128, 512, 784, False, False),
    ("weight grad Xᵀ·dY", 784, 512, 128, True, False),
    ("input grad dY·Wᵀ", 128, 784, 512, False, True),
    ("output layer X·W (N=10)", 128, 10, 512, False, False),
    ("output weight grad Xᵀ·dY (N=10)", 512, 10, 128, True, False),
]


def gflops(m, n, k, ta, tb):
    """Best of 8 timings of `reps` products op(A)·op(B) into a preallocated C, as GFLOP/s."""
    a = np.random.rand(k, m).astype(np.float32).T if ta else np.random.rand(m, k).astype(np.float32)
    b = np.random.rand(n, k).astype(np.float32).T if tb else np.random.rand(k, n).astype(np.float32)
    c = np.empty((m, n), np.float32)
    reps = max(5, int(2e8 / (2 * m * n * k)))
    best = float("inf")
    for _ in range(8):
        t = time.perf_counter()
        for _ in range(reps):
            np.matmul(a, b, out=c)
        best = min(best, (time.perf_counter() - t) / reps)
    return 2 * m * n * k / best / 1e9


if __name__ == "__main__":
    print(f"{'shape':34}{'M×N×K':13}GFLOP/s")
    for name, m, n, k, ta, tb in SHAPES:
        print(f"{name:34}{f'{m}×{n}×{k}':13}{gflops(m, n, k, ta, tb):7.1f}")
