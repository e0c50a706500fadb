// GEMM shapes of the reference model (GFLOP/s via throughput × flops), the element-wise kernels, a training
// step at 1…usable-CPU workers, and the malloc count of steady-state steps (must be 0: compare "fit, 1 step"
// with "fit, 101 steps" — the difference is what 100 steps allocate).
import Benchmark
import Foundation
import LoomConfig
import LoomData
import LoomEngine
import LoomKernels
import LoomNN

let repoRoot = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
    .deletingLastPathComponent().deletingLastPathComponent().path

nonisolated(unsafe) let benchmarks: @Sendable () -> Void = {
    Benchmark.defaultConfiguration = .init(
        metrics: [.wallClock, .throughput, .mallocCountTotal],
        warmupIterations: 3, maxDuration: .seconds(2), maxIterations: 200)

    for (name, m, n, k, ta, tb) in Bench.shapes {
        // Each iteration is one GEMM: throughput (per second) × 2mnk = FLOP/s.
        Benchmark("gemm \(m)x\(n)x\(k) \(name) [\(2 * m * n * k) flop]") { benchmark in
            let a = AlignedBuffer(count: m * k)
            let b = AlignedBuffer(count: k * n)
            let c = AlignedBuffer(count: m * n)
            a.fill(0.5)
            b.fill(0.25)
            let ws = GemmWorkspace()
            gemm(
                m: m, n: n, k: k, a: a.pointer, lda: ta ? m : k, transposeA: ta, b: b.pointer, ldb: tb ? k : n,
                transposeB: tb, c: c.pointer, ldc: n, workspace: ws)  // the workspace grows once, here
            benchmark.startMeasurement()
            for _ in benchmark.scaledIterations {
                gemm(
                    m: m, n: n, k: k, a: a.pointer, lda: ta ? m : k, transposeA: ta, b: b.pointer, ldb: tb ? k : n,
                    transposeB: tb, c: c.pointer, ldc: n, workspace: ws)
            }
        }
    }

    Benchmark("softmax + cross-entropy + gradient, 128 x 10") { benchmark in
        let z = AlignedBuffer(count: 1280)
        let out = AlignedBuffer(count: 1280)
        let loss = AlignedBuffer(count: 128)
        let correct = AlignedBuffer(count: 128)
        let labels = UnsafeMutablePointer<Int32>.allocate(capacity: 128)
        for i in 0..<128 { labels[i] = Int32(i % 10) }
        for i in 0..<1280 { z.pointer[i] = Float(i % 7) * 0.3 }
        benchmark.startMeasurement()
        for _ in benchmark.scaledIterations {
            softmaxCrossEntropyRows(
                rows: 128, cols: 10, z.pointer, ld: 10, out: out.pointer, ldOut: 10, labels: labels,
                scale: 1 / 128, gradient: true, loss: loss.pointer, correct: correct.pointer)
        }
    }

    Benchmark("relu derivative, 128 x 512") { benchmark in
        let y = AlignedBuffer(count: 65536)
        let dy = AlignedBuffer(count: 65536)
        for i in 0..<65536 { y.pointer[i] = Float(i % 5) - 2 }
        benchmark.startMeasurement()
        for _ in benchmark.scaledIterations {
            multiplyActivationDerivative(.relu, rows: 128, cols: 512, y: y.pointer, ldy: 512, dy: dy.pointer, ld: 512)
        }
    }

    guard
        let config = try? ConfigLoader.load(
            path: repoRoot + "/configs/mnist.yaml",
            overrides: ["data.path=\(repoRoot)/data/mnist", "training.workers=1"]),
        let run = try? TrainingRun(config: config)
    else {
        print("LoomBenchmarks: cannot load configs/mnist.yaml and data/mnist; skipping the training benchmarks")
        return
    }
    let topology = Topology.detect()
    var counts = [1]
    while counts.last! * 2 <= topology.usableCPUs.count { counts.append(counts.last! * 2) }
    if counts.last! != topology.usableCPUs.count { counts.append(topology.usableCPUs.count) }
    for workers in counts {
        // Each iteration is one training step of the reference model (batch 128, RMSprop).
        Benchmark(
            "training step, \(workers) worker\(workers == 1 ? "" : "s") [128 samples]",
            configuration: .init(metrics: [.wallClock, .throughput], maxDuration: .seconds(3))
        ) { benchmark in
            let model = config.makeModel(inputWidth: 784)
            model.initialize(seed: 1)
            let trainer = try Trainer(
                model: model, optimizer: config.optimizer, placements: topology.placement(workers: workers),
                batchSize: 128, seed: 1)
            _ = trainer.fit(run.train, epochs: 1, stepsPerEpoch: 20)
            let steps = benchmark.scaledIterations.count
            benchmark.startMeasurement()
            _ = trainer.fit(run.train, epochs: 1, stepsPerEpoch: steps)
        }
    }
    for steps in [1, 101] {
        Benchmark(
            "fit, \(steps) step\(steps == 1 ? "" : "s") (mallocs)",
            configuration: .init(metrics: [.mallocCountTotal], warmupIterations: 1, maxIterations: 5)
        ) { benchmark in
            let model = config.makeModel(inputWidth: 784)
            model.initialize(seed: 1)
            let trainer = try Trainer(
                model: model, optimizer: config.optimizer, placements: topology.placement(workers: counts.last!),
                batchSize: 128, seed: 1)
            _ = trainer.fit(run.train, epochs: 1, stepsPerEpoch: 2)
            benchmark.startMeasurement()
            _ = trainer.fit(run.train, epochs: 1, stepsPerEpoch: steps)
        }
    }
}
