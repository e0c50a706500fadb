#!/usr/bin/env python3
"""The reference model's training step in NumPy, the same math as Loom's: MNIST, 784 -> Dense(512, relu) ->
Dense(10, softmax), sparse categorical cross-entropy (batch mean), RMSprop with Keras 3's rule
(a = rho*a + (1-rho)*g^2; w -= lr*g/sqrt(a + eps)), batch 128, float32 throughout.

Prints samples/s for one OpenBLAS thread and for all CPUs, each in its own process (OPENBLAS_NUM_THREADS is read
at import). Run from the repository root:

    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE python3 Benchmarks/reference/numpy_step.py [--steps 300]
"""
import argparse
import gzip
import os
import subprocess
import sys
import time


def load_mnist(root):
    import numpy as np
    with gzip.open(os.path.join(root, "train-images-idx3-ubyte.gz")) as f:
        x = np.frombuffer(f.read(), np.uint8, offset=16).reshape(-1, 784)
    with gzip.open(os.path.join(root, "train-labels-idx1-ubyte.gz")) as f:
        y = np.frombuffer(f.read(), np.uint8, offset=8)
    return x, y


def run(steps, warmup, root):
    import numpy as np
    x_all, y_all = load_mnist(root)
    rng = np.random.default_rng(1)
    limit1, limit2 = np.sqrt(6 / (784 + 512)), np.sqrt(6 / (512 + 10))
    w1 = rng.uniform(-limit1, limit1, (784, 512)).astype(np.float32)
    b1 = np.zeros(512, np.float32)
    w2 = rng.uniform(-limit2, limit2, (512, 10)).astype(np.float32)
    b2 = np.zeros(10, np.float32)
    params = [w1, b1, w2, b2]
    acc = [np.zeros_like(p) for p in params]
    lr, rho, eps = np.float32(0.001), np.float32(0.9), np.float32(1e-7)
    order = rng.permutation(len(x_all))
    batch = 128

    def step(s):
        idx = order[(s * batch) % (len(order) - batch):][:batch]
        x = x_all[idx].astype(np.float32) * np.float32(1 / 255)
        y = y_all[idx]
        h = np.maximum(x @ w1 + b1, 0)
        z = h @ w2 + b2
        z -= z.max(axis=1, keepdims=True)
        p = np.exp(z)
        p /= p.sum(axis=1, keepdims=True)
        dz = p
        dz[np.arange(batch), y] -= 1
        dz *= np.float32(1 / batch)
        grads = [None, None, h.T @ dz, dz.sum(axis=0)]
        dh = (dz @ w2.T) * (h > 0)
        grads[0] = x.T @ dh
        grads[1] = dh.sum(axis=0)
        for p_, a_, g in zip(params, acc, grads):
            a_ *= rho
            a_ += (1 - rho) * g * g
            p_ -= lr * g / np.sqrt(a_ + eps)

    for s in range(warmup):
        step(s)
    t0 = time.perf_counter()
    for s in range(steps):
        step(warmup + s)
    seconds = time.perf_counter() - t0
    return steps * batch / seconds


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--steps", type=int, default=300)
    ap.add_argument("--warmup", type=int, default=20)
    ap.add_argument("--data", default="data/mnist")
    ap.add_argument("--threads", type=int, help="run in this process with this many OpenBLAS threads")
    args = ap.parse_args()
    if args.threads:
        print(f"{run(args.steps, args.warmup, args.data):.0f}")
        return
    cpus = len(os.sched_getaffinity(0))
    print("threads  samples/s  s/epoch (60000 samples)")
    for threads in sorted({1, cpus}):
        env = dict(os.environ, OPENBLAS_NUM_THREADS=str(threads), OMP_NUM_THREADS=str(threads))
        out = subprocess.run([sys.executable, __file__, "--threads", str(threads), "--steps", str(args.steps),
                              "--warmup", str(args.warmup), "--data", args.data],
                             env=env, check=True, capture_output=True, text=True).stdout
        rate = float(out.strip())
        print(f"{threads:7d}  {rate:9.0f}  {60000 / rate:.3f}")


if __name__ == "__main__":
    main()
