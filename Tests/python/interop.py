#!/usr/bin/env python3
"""Python interop: read Loom's safetensors weights with NumPy alone (by the format's spec), check names and
shapes, run the model's forward pass on the MNIST test set, and reproduce the test accuracy Loom reported; then
run the README's NumPy snippet as written (in a folder holding mnist.safetensors and data/) and check it prints
the same accuracy.

    python3 Tests/python/interop.py WEIGHTS REPORT.json [--data data/mnist]
"""
import argparse
import gzip
import json
import os
import re
import struct
import subprocess
import sys
import tempfile

import numpy as np


def read_safetensors(path):
    """{name: array}, metadata — per https://huggingface.co/docs/safetensors (8-byte LE length, JSON, data)."""
    with open(path, "rb") as f:
        raw = f.read()
    (n,) = struct.unpack("<Q", raw[:8])
    header = json.loads(raw[8:8 + n])
    meta = header.pop("__metadata__", {})
    data = raw[8 + n:]
    tensors = {}
    for name, entry in header.items():
        assert entry["dtype"] == "F32", entry
        begin, end = entry["data_offsets"]
        tensors[name] = np.frombuffer(data[begin:end], dtype="<f4").reshape(entry["shape"])
    return tensors, meta


def activations(config_yaml):
    """The activation of each dense layer, in order, from the resolved config in the metadata."""
    acts, in_dense = [], False
    for line in config_yaml.splitlines():
        s = line.strip()
        if s.startswith("- type:"):
            in_dense = s.endswith("dense")
        elif in_dense and s.startswith("activation:"):
            acts.append(s.split(":", 1)[1].strip())
    return acts


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("weights")
    ap.add_argument("report")
    ap.add_argument("--data", default="data/mnist")
    args = ap.parse_args()
    tensors, meta = read_safetensors(args.weights)
    assert meta["format"] == "loom-weights", meta.get("format")
    names = sorted(tensors)
    kernels = sorted([n for n in names if n.endswith(".kernel")], key=lambda n: int(n.split(".")[1]))
    assert [tensors[k].shape for k in kernels] == [(784, 512), (512, 10)], [tensors[k].shape for k in kernels]
    assert tensors["layers.0.bias"].shape == (512,) and tensors["layers.1.bias"].shape == (10,)
    acts = activations(meta["config"])
    assert acts == ["relu", "softmax"], acts

    with gzip.open(os.path.join(args.data, "t10k-images-idx3-ubyte.gz")) as f:
        x = np.frombuffer(f.read(), np.uint8, offset=16).reshape(-1, 784).astype(np.float32) / np.float32(255)
    with gzip.open(os.path.join(args.data, "t10k-labels-idx1-ubyte.gz")) as f:
        y = np.frombuffer(f.read(), np.uint8, offset=8)
    h = x
    for kernel, act in zip(kernels, acts):
        h = h @ tensors[kernel] + tensors[kernel.replace("kernel", "bias")]
        if act == "relu":
            h = np.maximum(h, 0)
        elif act == "softmax":
            h = np.exp(h - h.max(axis=1, keepdims=True))
            h /= h.sum(axis=1, keepdims=True)
    accuracy = float((h.argmax(axis=1) == y).mean())
    with open(args.report) as f:
        loom_accuracy = json.load(f)["test_accuracy"]
    print(f"NumPy forward pass: test accuracy {accuracy:.4f}; Loom reported {loom_accuracy:.4f}")
    failed = 0
    if abs(accuracy - loom_accuracy) > 1e-4:
        print("failed: accuracies differ", file=sys.stderr)
        failed += 1
    readme = readme_snippet_accuracy(args.weights, os.path.dirname(os.path.dirname(os.path.abspath(args.data))))
    print(f"README snippet: test accuracy {readme:.4f}")
    if abs(readme - loom_accuracy) > 1e-3:
        print("failed: the README's snippet disagrees", file=sys.stderr)
        failed += 1
    print(f"interop: {2 - failed} passed, {failed} failed")
    sys.exit(1 if failed else 0)


def readme_snippet_accuracy(weights, root):
    """Runs the README's ```python block unchanged, next to mnist.safetensors and data/, and reads its output."""
    readme = open(os.path.join(root, "README.md"), encoding="utf-8").read()
    blocks = re.findall(r"```python\n(.*?)```", readme, re.S)
    assert len(blocks) == 1, f"expected one python block in the README, found {len(blocks)}"
    with tempfile.TemporaryDirectory() as folder:
        os.symlink(os.path.abspath(weights), os.path.join(folder, "mnist.safetensors"))
        os.symlink(os.path.join(root, "data"), os.path.join(folder, "data"))
        out = subprocess.run([sys.executable, "-c", blocks[0]], cwd=folder, capture_output=True, text=True, check=True)
    return float(out.stdout.strip().split()[-1])


if __name__ == "__main__":
    main()
