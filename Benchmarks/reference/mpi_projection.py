"""Projected efficiency of Loom's owner-computes step across R nodes (MPI), from measured compute and the bytes
a step exchanges. A model, stated:

  step(R) = compute / R + (R - 1) / R * bytes * 8 / rate + collectives * 2 * (R - 1) * latency

compute: one node's step with all its threads (measured); bytes: the activations every rank gathers (each layer's
input and output gradient for the whole batch, the per-row loss) plus the parameters (each rank gathers what the
others updated); a ring all-gather moves (R - 1) / R of them through each node's link in each direction; latency:
per hop of a ring all-gather. Efficiency = compute / (R * step(R)). Checked on one machine against emulated
networks (README, "Multi-process and multi-node").

Usage: python3 Benchmarks/reference/mpi_projection.py
"""

MB = 1e6
models = {
    # name: (compute seconds per step on one 16-core node, measured; floats in the step's all-gathers)
    # Book's model, batch 128: Xeon, 16 threads, 286,371 samples/s -> 0.447 ms; activations 128 x (512 + 512 + 10
    # + 2) floats, parameters 407,050 floats.
    "book (784-512-10, batch 128)": (128 / 286371, (128 * 1036 + 407050) * 4),
    # Wide model, batch 512: Xeon, 16 threads, 21,546 samples/s -> 23.8 ms; activations 512 x (2048 + 2048 +
    # 2048 + 10 + 2), parameters 784*2048 + 2048 + 2048*2048 + 2048 + 2048*10 + 10 floats.
    "wide (784-2048-2048-10, batch 512)": (
        512 / 21546, (512 * 6156 + 784 * 2048 + 2048 + 2048 * 2048 + 2048 + 2048 * 10 + 10) * 4),
}
collectives = 12  # 2 per layer with parameters + losses (activations), 2 per layer (parameters)
latency = 5e-6
for name, (compute, nbytes) in models.items():
    print(f"{name}: {compute * 1e3:.3f} ms compute per step, {nbytes / MB:.2f} MB gathered per step")
    print("nodes  10 Gb/s  25 Gb/s  100 Gb/s")
    for r in (2, 4, 8, 16, 32, 64):
        cells = []
        for gbps in (10, 25, 100):
            step = compute / r + (r - 1) / r * nbytes * 8 / (gbps * 1e9) + collectives * 2 * (r - 1) * latency
            cells.append(f"{compute / (r * step):7.2f}")
        print(f"{r:5d}  " + "  ".join(cells))

# Weak scaling: the wide model with 512 rows per node (the global batch grows with the nodes, as data-parallel
# users usually scale): compute per node stays 23.8 ms, the activations gathered grow with the batch.
compute = 512 / 21546
params = (784 * 2048 + 2048 + 2048 * 2048 + 2048 + 2048 * 10 + 10) * 4
print("wide, 512 rows per node (weak scaling)")
print("nodes  10 Gb/s  25 Gb/s  100 Gb/s")
for r in (2, 4, 8, 16, 32, 64):
    cells = []
    for gbps in (10, 25, 100):
        nbytes = 512 * r * 6156 * 4 + params
        step = compute + (r - 1) / r * nbytes * 8 / (gbps * 1e9) + collectives * 2 * (r - 1) * latency
        cells.append(f"{compute / step:7.2f}")
    print(f"{r:5d}  " + "  ".join(cells))
