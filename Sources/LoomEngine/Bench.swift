// Benchmarks users can run without a harness (`loom bench kernels`, `loom bench scaling`): GEMM speed against
// the core's measured FMA peak, and training throughput across worker counts, with CSV, JSON and SVG output.
import Foundation
import LoomConfig
import LoomData
import LoomKernels
import LoomNN

/// Monotonic seconds.
public func monotonicSeconds() -> Double {
    var t = timespec()
    clock_gettime(CLOCK_MONOTONIC, &t)
    return Double(t.tv_sec) + Double(t.tv_nsec) * 1e-9
}

/// The process's peak resident set size so far, in bytes.
public func peakRSSBytes() -> Int {
    var usage = rusage()
    getrusage(RUSAGE_SELF.rawValue, &usage)
    return usage.ru_maxrss * 1024
}

/// One GEMM shape's measurement.
public struct KernelResult: Codable, Sendable {
    /// The product's name (`layer 1 forward`).
    public var name: String
    /// The product's shape: (m × k) · (k × n).
    public var m: Int, n: Int, k: Int
    /// GFLOP/s of one worker.
    public var gflopsSingle: Double
    /// GFLOP/s of all workers, each computing the product on its own.
    public var gflopsAll: Double
    /// Workers in `gflopsAll`.
    public var workers: Int
    /// `gflopsSingle` as a percentage of one core's measured FMA peak.
    public var percentOfPeak: Double
}

/// A training step's speed beside the speed of its largest GEMM, measured in the same sitting.
public struct StepResult: Codable, Sendable {
    /// Floating-point operations of one step: every dense layer's forward, weight-gradient and (above the first
    /// layer) input-gradient products, 2·batch·in·out each.
    public var flopsPerStep: Double
    /// Milliseconds per training step.
    public var millisecondsPerStep: Double
    /// flopsPerStep / step time.
    public var stepGflops: Double
    /// The first dense layer's forward product (batch × units × input) alone, on the same worker.
    public var gemmName: String
    /// That product's GFLOP/s.
    public var gemmGflops: Double
    /// stepGflops / gemmGflops: the share of the GEMM rate a whole step keeps (elementwise work, softmax, the
    /// update and the gather cost the rest).
    public var ratio: Double
}

/// One worker count's training throughput.
public struct ScalingResult: Codable, Sendable {
    /// Worker threads (per rank).
    public var workers: Int
    /// Training samples per second.
    public var samplesPerSecond: Double
    /// Samples per second over one worker's.
    public var speedup: Double
    /// Speed-up over the worker count.
    public var efficiency: Double
    /// Seconds per epoch at this rate.
    public var secondsPerEpoch: Double
    /// The process's peak resident memory, in MB.
    public var peakRSSMB: Double
    /// Under an MPI launcher: the ranks (each with `workers` threads), the bytes each rank sent per step and
    /// the seconds its worker 0 spent exchanging per step.
    public var ranks = 1
    /// MB sent per step by each rank.
    public var megabytesSentPerStep: Double?
    /// Of those, MB started early (travelling while later stages computed).
    public var megabytesStartedEarlyPerStep: Double?
    /// Milliseconds per step that worker 0 spent exchanging with other ranks (exposed: not hidden behind
    /// computation).
    public var communicationMillisecondsPerStep: Double?
}

/// The measurements behind `loom bench`: kernels, a training step, scaling over workers, and the projection.
public enum Bench {
    /// The workload's GEMM shapes: (name, m, n, k, transposeA, transposeB).
    public static let shapes: [(String, Int, Int, Int, Bool, Bool)] = [
        ("forward X·W", 128, 512, 784, false, false),
        ("weight grad Xᵀ·dY", 784, 512, 128, true, false),
        ("input grad dY·Wᵀ", 128, 784, 512, false, true),
        ("output layer X·W (N=10)", 128, 10, 512, false, false),
        ("output weight grad Xᵀ·dY (N=10)", 512, 10, 128, true, false),
    ]

    /// GFLOP/s of each shape on one pinned worker, then on all `workers` at once (each on its own matrices),
    /// best of `repeats` timings (`bestGemmSeconds`); and the core's FMA peak.
    public static func kernels(workers: Int, placements: [WorkerPlacement], repeats: Int = 7) -> (
        peak: Double, results: [KernelResult]
    ) {
        let pool = WorkerPool(placements: placements)
        defer { pool.shutdown() }
        let peak = PerWorker<Double>(count: pool.count, initial: 0)
        pool.run { w in if w == 0 { peak[0] = measureFMAPeak(clock: monotonicSeconds) } }
        var results: [KernelResult] = []
        for (name, m, n, k, ta, tb) in shapes {
            let seconds = PerWorker<Double>(count: pool.count, initial: 0)
            func measure(active: Int) -> Double {
                pool.run { w in
                    guard w < active else { return }
                    seconds[w] = bestGemmSeconds(m: m, n: n, k: k, transposeA: ta, transposeB: tb, timings: repeats)
                }
                let slowest = (0..<active).map { seconds[$0] }.max()!
                return Double(active) * 2 * Double(m * n * k) / slowest / 1e9
            }
            let single = measure(active: 1)
            let all = pool.count > 1 ? measure(active: pool.count) : single
            results.append(
                KernelResult(
                    name: name, m: m, n: n, k: k, gflopsSingle: single, gflopsAll: all,
                    workers: pool.count, percentOfPeak: 100 * single / (peak[0] / 1e9)))
        }
        return (peak[0] / 1e9, results)
    }

    /// One worker's training step against its model's first GEMM: `rounds` interleaved rounds, each timing 3 × `steps`
    /// steps and 3 × the product alone; each keeps its best (a shared machine only ever slows a run down).
    public static func step(_ run: TrainingRun, steps: Int, rounds: Int, placement: WorkerPlacement) -> StepResult {
        let t = run.config.training
        let model = run.config.makeModel(inputWidth: run.train.features)
        model.initialize(seed: t.seed)
        let b = Double(t.batchSize)
        var flops = 0.0
        var first: Dense?
        for (l, layer) in model.layers.enumerated() {
            guard let dense = layer as? Dense else { continue }
            if first == nil { first = dense }
            flops += (l == 0 ? 2 : 3) * 2 * b * Double(dense.inputWidth * dense.units)
        }
        let trainer = Trainer(
            checked: model, optimizer: run.config.optimizer, placements: [placement],
            batchSize: t.batchSize, seed: t.seed)
        _ = trainer.fit(run.train, epochs: 1, shuffle: t.shuffle, stepsPerEpoch: 20)  // warm up
        // The product alone, on the same pinned worker, on buffers of the layer's shapes.
        let (m, n, k) = (t.batchSize, first?.units ?? 1, first?.inputWidth ?? 1)
        let pool = WorkerPool(placements: [placement])
        defer { pool.shutdown() }
        let gemmSeconds = PerWorker<Double>(count: 1, initial: .infinity)
        var bestStep = Double.infinity
        for _ in 0..<max(1, rounds) {
            // Short timings of both (here about 60 ms of steps, 6 ms of products), alternated, so that each side
            // has its chances at a quiet moment.
            for _ in 0..<3 {
                let rate = trainer.fit(run.train, epochs: 1, shuffle: t.shuffle, stepsPerEpoch: steps)[0]
                    .samplesPerSecond
                bestStep = min(bestStep, b / rate)
            }
            pool.run { _ in
                gemmSeconds[0] = min(
                    gemmSeconds[0],
                    bestGemmSeconds(
                        m: m, n: n, k: k, transposeA: false,
                        transposeB: false, timings: 3))
            }
        }
        let stepGflops = flops / bestStep / 1e9
        let gemmGflops = 2 * Double(m * n * k) / gemmSeconds[0] / 1e9
        return StepResult(
            flopsPerStep: flops, millisecondsPerStep: bestStep * 1e3, stepGflops: stepGflops,
            gemmName: "\(m)×\(n)×\(k)", gemmGflops: gemmGflops, ratio: stepGflops / gemmGflops)
    }

    /// Seconds per call of one GEMM shape on the calling thread: the best of `timings` timings of enough calls
    /// for about 0.2 GFLOP (at least 5, at most 10,000), after one untimed round, on buffers allocated here.
    static func bestGemmSeconds(m: Int, n: Int, k: Int, transposeA ta: Bool, transposeB tb: Bool, timings: Int)
        -> Double
    {
        let a = AlignedBuffer(count: m * k)
        let b = AlignedBuffer(count: k * n)
        let c = AlignedBuffer(count: m * n)
        for i in 0..<a.count { a.pointer[i] = Float(i % 17) * 0.01 }
        for i in 0..<b.count { b.pointer[i] = Float(i % 13) * 0.01 }
        let workspace = GemmWorkspace()
        let reps = max(5, min(10_000, Int(2e8 / Double(2 * m * n * k))))
        var best = Double.infinity
        for r in 0..<timings + 1 {
            let t0 = monotonicSeconds()
            for _ in 0..<reps {
                gemm(
                    m: m, n: n, k: k, a: a.pointer, lda: ta ? m : k, transposeA: ta, b: b.pointer,
                    ldb: tb ? k : n, transposeB: tb, c: c.pointer, ldc: n, workspace: workspace)
            }
            if r > 0 { best = min(best, (monotonicSeconds() - t0) / Double(reps)) }
        }
        return best
    }

    /// Trains `steps` steps (after `warmup` more) of `run`'s model at each worker count, from the same seed;
    /// the worker counts are interleaved `repeats` times and each keeps its best rate (a shared or noisy machine
    /// only ever slows a run down).
    /// Samples per second at each worker count (best of `repeats` interleaved rounds of `steps` steps after
    /// `warmup`). Under an MPI launcher (`communicator` of several ranks) each count is threads per rank, and the
    /// speed-up is over one process with one thread, measured first by rank 0 alone.
    public static func scaling(
        _ run: TrainingRun, workers: [Int], steps: Int, warmup: Int = 20, repeats: Int = 3,
        topology: Topology = .detect(), communicator: Communicator = .single
    ) -> [ScalingResult] {
        var results: [ScalingResult] = []
        let t = run.config.training
        /// Samples/s of one trainer, and its exchange per step.
        func measure(_ w: Int, _ world: Communicator) -> (Double, Communication?) {
            let model = run.config.makeModel(inputWidth: run.train.features)
            model.initialize(seed: t.seed)
            let trainer = Trainer(
                checked: model, optimizer: run.config.optimizer, placements: topology.placement(workers: w),
                batchSize: t.batchSize, seed: t.seed, communicator: world)
            _ = trainer.fit(run.train, epochs: 1, shuffle: t.shuffle, stepsPerEpoch: warmup)
            let rate = trainer.fit(run.train, epochs: 1, shuffle: t.shuffle, stepsPerEpoch: steps)[0].samplesPerSecond
            return (rate, trainer.communication)
        }
        var baseline: Double?
        if communicator.isDistributed {
            if communicator.rank == 0 {
                baseline = (0..<max(1, repeats)).map { _ in measure(1, .single).0 }.max()
            }
            _ = communicator.maximum(0)  // the other ranks wait here
        }
        var best = [Double](repeating: 0, count: workers.count)
        var exchange = [Communication?](repeating: nil, count: workers.count)
        for _ in 0..<max(1, repeats) {
            for (i, w) in workers.enumerated() {
                let (rate, sent) = measure(w, communicator)
                if rate > best[i] { (best[i], exchange[i]) = (rate, sent) }
            }
        }
        let ranks = communicator.size
        let base = baseline ?? best[0] / Double(workers[0])
        for (i, w) in workers.enumerated() {
            let rate = best[i]
            let speedup = rate / base
            results.append(
                ScalingResult(
                    workers: w, samplesPerSecond: rate, speedup: speedup,
                    efficiency: speedup / Double(w * ranks),
                    secondsPerEpoch: Double(run.train.count) / rate,
                    peakRSSMB: Double(peakRSSBytes()) / 1_048_576, ranks: ranks,
                    megabytesSentPerStep: exchange[i].map { $0.bytesPerStep / 1e6 },
                    megabytesStartedEarlyPerStep: exchange[i].map { $0.startedBytesPerStep / 1e6 },
                    communicationMillisecondsPerStep: exchange[i].map { $0.secondsPerStep * 1e3 }))
        }
        return results
    }

    /// The scaling table as CSV.
    public static func csv(_ rows: [ScalingResult]) -> String {
        "workers,samples_per_second,speedup,efficiency,seconds_per_epoch,peak_rss_mb\n"
            + rows.map {
                String(
                    format: "%d,%.1f,%.3f,%.3f,%.4f,%.1f", $0.workers, $0.samplesPerSecond, $0.speedup, $0.efficiency,
                    $0.secondsPerEpoch, $0.peakRSSMB)
            }.joined(separator: "\n") + "\n"
    }

    /// Rows as a JSON array of objects, keys in snake_case as in the printed tables.
    public static func json<T: Encodable>(_ rows: [T]) -> String {
        let encoder = JSONEncoder()
        encoder.keyEncodingStrategy = .convertToSnakeCase
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
        return String(decoding: (try? encoder.encode(rows)) ?? Data("[]".utf8), as: UTF8.self) + "\n"
    }

    /// An SVG chart of speed-up against workers, with the ideal (linear) line.
    public static func svg(_ rows: [ScalingResult], title: String) -> String {
        let w = 640.0
        let h = 420.0
        let left = 60.0
        let right = 20.0
        let top = 60.0
        let bottom = 50.0
        let maxW = Double(rows.map(\.workers).max() ?? 1)
        let axis = Axis(covering: 0, max(maxW, rows.map(\.speedup).max() ?? 1), ticks: 6, limits: 0...Double.infinity)
        func x(_ v: Double) -> Double { left + (v - 1) / max(1, maxW - 1) * (w - left - right) }
        func y(_ v: Double) -> Double { axis.position(v, from: h - bottom, to: top) }
        var s = """
            <svg xmlns="http://www.w3.org/2000/svg" width="\(Int(w))" height="\(Int(h))" viewBox="0 0 \(Int(w)) \(Int(h))" font-family="sans-serif" font-size="12">
            <rect width="100%" height="100%" fill="white"/>
            <text x="\(w / 2)" y="22" text-anchor="middle" font-size="15">\(title)</text>
            <line x1="\(left)" y1="\(y(0))" x2="\(w - right)" y2="\(y(0))" stroke="black"/>
            <line x1="\(left)" y1="\(y(0))" x2="\(left)" y2="\(top)" stroke="black"/>
            <text x="\(w / 2)" y="\(h - 12)" text-anchor="middle">workers</text>
            <text x="16" y="\(h / 2)" text-anchor="middle" transform="rotate(-90 16 \(h / 2))">speed-up over 1 worker</text>
            <line x1="\(left + 10)" y1="40" x2="\(left + 30)" y2="40" stroke="#1f77b4" stroke-width="2.5"/>
            <text x="\(left + 35)" y="44" fill="#1f77b4">measured</text>
            <line x1="\(left + 120)" y1="40" x2="\(left + 140)" y2="40" stroke="#999" stroke-dasharray="6 4"/>
            <text x="\(left + 145)" y="44" fill="#666">ideal (speed-up = workers)</text>

            """
        for r in rows {
            s += "<text x=\"\(x(Double(r.workers)))\" y=\"\(y(0) + 16)\" text-anchor=\"middle\">\(r.workers)</text>\n"
        }
        for t in axis.ticks {
            s += "<text x=\"\(left - 8)\" y=\"\(y(t) + 4)\" text-anchor=\"end\">\(axis.label(t))</text>\n"
            s += "<line x1=\"\(left)\" y1=\"\(y(t))\" x2=\"\(w - right)\" y2=\"\(y(t))\" stroke=\"#eee\"/>\n"
        }
        s +=
            "<line x1=\"\(x(1))\" y1=\"\(y(1))\" x2=\"\(x(maxW))\" y2=\"\(y(maxW))\" stroke=\"#999\" stroke-dasharray=\"6 4\"/>\n"
        let points = rows.map { "\(x(Double($0.workers))),\(y($0.speedup))" }.joined(separator: " ")
        s += "<polyline points=\"\(points)\" fill=\"none\" stroke=\"#1f77b4\" stroke-width=\"2.5\"/>\n"
        for r in rows {
            s += "<circle cx=\"\(x(Double(r.workers)))\" cy=\"\(y(r.speedup))\" r=\"4\" fill=\"#1f77b4\"/>\n"
            s += String(
                format: "<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"middle\" fill=\"#1f77b4\">%.2f×</text>\n",
                x(Double(r.workers)), y(r.speedup) - 10, r.speedup)
        }
        return s + "</svg>\n"
    }
}
