import CSupport
import Foundation
import LoomData
import LoomKernels
import LoomNN
import Testing

@testable import LoomEngine

func smallModel(dropout: Bool = true) -> Sequential {
    var layers: [any Layer] = [Dense(units: 24, activation: .relu)]
    if dropout { layers.append(Dropout(rate: 0.2)) }
    layers += [Dense(units: 12, activation: .tanh), Dense(units: 4, activation: .softmax)]
    return Sequential(inputWidth: 10, layers: layers, loss: .sparseCategoricalCrossentropy)
}

func trainer(_ model: Sequential, workers: Int, optimizer: OptimizerSpec, batch: Int, seed: UInt64 = 7) -> Trainer {
    model.initialize(seed: seed)
    return Trainer(
        checked: model, optimizer: optimizer, placements: Topology.detect().placement(workers: workers),
        batchSize: batch, seed: seed)
}

@Suite("Data-parallel engine", .serialized)
struct EngineTests {
    @Test("shards cover every row exactly once, sizes within one, for many batch sizes and worker counts")
    func sharding() {
        for n in [1, 2, 3, 7, 64, 96, 127, 128, 1000] {
            for workers in 1...min(n, 17) {
                var seen = [Int](repeating: 0, count: n)
                var sizes: [Int] = []
                for w in 0..<workers {
                    let r = shard(n, part: w, of: workers)
                    sizes.append(r.count)
                    for i in r { seen[i] += 1 }
                    if w > 0 { #expect(r.lowerBound == shard(n, part: w - 1, of: workers).upperBound) }
                }
                #expect(seen.allSatisfy { $0 == 1 }, "n \(n), workers \(workers)")
                #expect(sizes.max()! - sizes.min()! <= 1)
            }
        }
    }

    @Test(
        "the parallel gradient is the whole batch's gradient (one SGD step, against a single-threaded reference)",
        arguments: [1, 2, 3, 5])
    func parallelGradient(workers: Int) {
        let data = fizzBuzz().train.subset(0..<40)
        let lr: Float = 0.5
        // Reference: one thread, one part, batch of 40 in the trainer's first-epoch order (no shuffle).
        let ref = smallModel(dropout: false)
        ref.initialize(seed: 7)
        let w0 = ref.parameters.array
        let buffers = ActivationBuffers(model: ref, capacity: 40)
        let ws = GemmWorkspace()
        var labels = [Int32](repeating: 0, count: 40)
        labels.withUnsafeMutableBufferPointer { lp in
            data.gather(range: 0, count: 40, into: buffers.input, ld: 10, labels: lp.baseAddress!)
            let pass = Pass(training: true, seed: 7, step: 1)
            ref.forward(buffers, rows: 0..<40, pass: pass, workspace: ws)
            ref.lossAndGradient(
                buffers, rows: 0..<40, targets: Targets(labels: lp.baseAddress!), batchSize: 40, gradient: true)
            ref.backward(buffers, rows: 0..<40, pass: pass, workspace: ws)
            ref.parameterGradients(buffers, batchSize: 40, part: 0, of: 1, workspace: ws)
        }
        let g = ref.gradients.array
        let model = smallModel(dropout: false)
        let t = trainer(model, workers: workers, optimizer: .sgd(learningRate: lr), batch: 40)
        _ = t.fit(data, epochs: 1, shuffle: false)
        let w1 = model.parameters.array
        for i in 0..<w0.count {
            let expected = w0[i] - lr * g[i]
            #expect(abs(w1[i] - expected) <= 1e-6 * max(1, abs(expected)), "parameter \(i)")
        }
    }

    @Test("weights_digest is identical for 1, 2, 3, 4 and 8 workers (dropout, momentum, a short last batch)")
    func determinism() {
        let data = fizzBuzz()
        var digests: [Int: String] = [:]
        var accuracies: [Int: Double] = [:]
        for workers in [1, 2, 3, 4, 8] {
            let model = smallModel()
            let t = trainer(
                model, workers: workers, optimizer: .rmsprop(learningRate: 0.01, momentum: 0.5, centered: true),
                batch: 50)
            let history = t.fit(data.train, epochs: 3)
            #expect(history.count == 3 && history[0].steps == 19)
            digests[workers] = model.weightsDigest()
            accuracies[workers] = t.evaluate(data.test).accuracy
        }
        #expect(Set(digests.values).count == 1, "\(digests)")
        #expect(Set(accuracies.values).count == 1)
    }

    @Test("training on small data learns: XOR with sum of squared errors and SGD")
    func xorLearns() {
        let model = Sequential(
            inputWidth: 2,
            layers: [
                Dense(units: 2, activation: .sigmoid, kernelInitializer: .glorotNormal),
                Dense(units: 1, activation: .sigmoid, kernelInitializer: .glorotNormal),
            ],
            loss: .sumSquaredError)
        let t = trainer(model, workers: 2, optimizer: .sgd(learningRate: 1.0), batch: 4, seed: 1)
        _ = t.fit(xor().train, epochs: 3000, shuffle: false)
        #expect(t.evaluate(xor().test).accuracy == 1.0)
        let p = t.predict(xor().test)
        #expect(p[0] < 0.2 && p[1] > 0.8 && p[2] > 0.8 && p[3] < 0.2, "\(p)")
    }

    @Test("evaluation and prediction agree for any worker count; probabilities sum to one")
    func evaluation() {
        let data = fizzBuzz()
        var results: [Double] = []
        for workers in [1, 3] {
            let model = smallModel()
            let t = trainer(model, workers: workers, optimizer: .adam(learningRate: 0.01), batch: 32)
            _ = t.fit(data.train, epochs: 2)
            let e = t.evaluate(data.test)
            results.append(e.accuracy)
            #expect(e.count == 100 && e.confusion.flatMap { $0 }.reduce(0, +) == 100)
            let p = t.predict(data.test)
            for i in 0..<100 { #expect(abs(p[i * 4..<i * 4 + 4].reduce(0, +) - 1) < 1e-5) }
            // The probabilities are the ones the loss was computed from: mean −log p[label] = the loss.
            let nll = (0..<100).map { -log(Double(p[$0 * 4 + Int(data.test.label($0))])) }.reduce(0, +) / 100
            #expect(abs(nll - e.loss) < 1e-4 * max(1, e.loss), "−log p \(nll) vs loss \(e.loss)")
        }
        #expect(results[0] == results[1])
    }

    @Test("each worker runs on the CPU it was pinned to (sched_getcpu)")
    func pinning() {
        let topology = Topology.detect()
        let placements = topology.placement(workers: topology.usableCPUs.count)
        let pool = WorkerPool(placements: placements)
        #expect(pool.pinResults.allSatisfy { $0 == 0 })
        #expect(pool.observedCPUs == placements.map(\.cpu))
        // And again inside a later job.
        let seen = UnsafeMutablePointer<Int32>.allocate(capacity: placements.count)
        defer { seen.deallocate() }
        let box = PointerBox(seen)
        pool.run { w in box.pointer[w] = loom_current_cpu() }
        #expect((0..<placements.count).map { Int(seen[$0]) } == placements.map(\.cpu))
        pool.shutdown()
    }

    @Test(
        "the barrier orders writes: every worker sees every other's value after it",
        arguments: [2, 3, 4, 5, 7, 8])
    func barrier(workers: Int) {
        let stale = staleReads(workers: workers, barrier: nil) { _ in (0..<workers, 2000) }
        #expect(stale == 0)
    }

    /// Runs `workers` threads that each write a round number to a slot of their own, wait at `barrier` (the
    /// pool's when nil), count the slots of `peers(w).workers` that do not show the same round yet, and wait
    /// again, for `peers(w).rounds` rounds, then meet at the pool's barrier; returns the stale reads counted.
    func staleReads(
        workers: Int, barrier: SpinBarrier?, peers: @escaping @Sendable (Int) -> (workers: Range<Int>, rounds: Int)
    ) -> Int {
        let pool = WorkerPool(placements: Topology.detect().placement(workers: workers), pin: false)
        defer { pool.shutdown() }
        let barrier = barrier ?? pool.barrier
        let slots = UnsafeMutablePointer<Int>.allocate(capacity: workers * 16)
        let bad = UnsafeMutablePointer<Int>.allocate(capacity: workers * 16)
        slots.initialize(repeating: 0, count: workers * 16)
        bad.initialize(repeating: 0, count: workers * 16)
        defer {
            slots.deallocate()
            bad.deallocate()
        }
        let (s, b) = (PointerBox(slots), PointerBox(bad))
        pool.run { w in
            let (group, rounds) = peers(w)
            for round in 1...rounds {
                s.pointer[w * 16] = round
                barrier.wait(w)
                for o in group where s.pointer[o * 16] != round { b.pointer[w * 16] += 1 }
                barrier.wait(w)
            }
            pool.barrier.wait(w)
        }
        return (0..<workers).reduce(0) { $0 + bad[$1 * 16] }
    }

    @Test(
        "a barrier within groups orders writes within each group, and lets groups run apart",
        arguments: [(4, 2), (6, 3), (8, 4), (8, 2)])
    func groupBarrier(workers: Int, group: Int) {
        let barrier = SpinBarrier(parties: workers, groupSize: group)
        #expect(barrier.rounds == StepPlan.barrierRounds(group))
        // Groups take different numbers of rounds: only a barrier among the group's own workers finishes; the
        // pool's full barrier still meets every worker after them.
        let stale = staleReads(workers: workers, barrier: barrier) { w in
            (w / group * group..<(w / group + 1) * group, 500 * (1 + w / group))
        }
        #expect(stale == 0)
    }
}

/// A raw pointer handed to worker jobs in tests (disjoint writes per worker).
struct PointerBox<T>: @unchecked Sendable {
    let pointer: UnsafeMutablePointer<T>
    init(_ p: UnsafeMutablePointer<T>) { pointer = p }
}
