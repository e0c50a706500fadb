import Foundation
import LoomData
import LoomKernels
import LoomNN
import Testing

@testable import LoomEngine

/// Regularizers and clipping by norm through the whole training step, against a hand computation in Double of
/// two SGD steps of a linear layer with mean squared error; and the same weights for every worker count.
@Suite("Regularizers and clipping by norm in the step", .serialized)
struct RegularizationEngineTests {
    /// 4 samples of 3 features, labels 0/1 (one-hot targets for 2 outputs).
    let x: [[Double]] = [[1, -2, 0.5], [0.25, 1, -1], [-1, 0.5, 2], [2, 0, -0.5]]
    let labels: [Int32] = [0, 1, 1, 0]
    let w0: [[Double]] = [[0.3, -0.2], [0.1, 0.4], [-0.5, 0.25]]
    let b0: [Double] = [0.05, -0.1]

    /// Two SGD steps (batches of 2) by hand: (kernel, bias, the epoch's mean loss with the penalty).
    func byHand(
        lr: Double, l1: Double, l2: Double, biasL2: Double, clipping: GradientClipping
    ) -> ([[Double]], [Double], Double) {
        var w = w0
        var b = b0
        var lossSum = 0.0
        for step in 0..<2 {
            var gw = [[Double]](repeating: [0, 0], count: 3)
            var gb = [0.0, 0.0]
            var dataLoss = 0.0
            for r in [2 * step, 2 * step + 1] {
                for j in 0..<2 {
                    let y = (0..<3).reduce(b[j]) { $0 + x[r][$1] * w[$1][j] }
                    let t: Double = Int(labels[r]) == j ? 1 : 0
                    dataLoss += (y - t) * (y - t) / 2 / 2  // mean over 2 outputs, then over the batch of 2
                    let dy = (y - t) / 2  // ∂/∂y of the batch mean: 2(y − t)/2 outputs/2 rows
                    for i in 0..<3 { gw[i][j] += x[r][i] * dy }
                    gb[j] += dy
                }
            }
            var penalty = 0.0
            for i in 0..<3 {
                for j in 0..<2 {
                    let v = w[i][j]
                    penalty += l1 * abs(v) + l2 * v * v
                    gw[i][j] += l1 * (v > 0 ? 1 : v < 0 ? -1 : 0) + 2 * l2 * v
                }
            }
            for j in 0..<2 {
                penalty += biasL2 * b[j] * b[j]
                gb[j] += 2 * biasL2 * b[j]
            }
            lossSum += (dataLoss + penalty) * 2  // the record sums per-row losses, each with the penalty
            let kernelSquares = gw.joined().reduce(0) { $0 + $1 * $1 }
            let biasSquares = gb.reduce(0) { $0 + $1 * $1 }
            func scale(_ c: Float, _ squares: Double) -> Double {
                squares.squareRoot() > Double(c) ? Double(c) / squares.squareRoot() : 1
            }
            var (sw, sb) = (1.0, 1.0)
            switch clipping {
            case .norm(let c): (sw, sb) = (scale(c, kernelSquares), scale(c, biasSquares))
            case .globalNorm(let c):
                (sw, sb) = (scale(c, kernelSquares + biasSquares), scale(c, kernelSquares + biasSquares))
            default: break
            }
            for i in 0..<3 { for j in 0..<2 { w[i][j] -= lr * gw[i][j] * sw } }
            for j in 0..<2 { b[j] -= lr * gb[j] * sb }
        }
        return (w, b, lossSum / 4)
    }

    func trained(
        workers: Int, l1: Float, l2: Float, biasL2: Float, clipping: GradientClipping
    ) -> (Sequential, EpochRecord) {
        let dense = Dense(
            units: 2, kernelRegularizer: l1 > 0 || l2 > 0 ? Regularizer(l1: l1, l2: l2) : nil,
            biasRegularizer: biasL2 > 0 ? Regularizer(l2: biasL2) : nil)
        let model = Sequential(inputWidth: 3, layers: [dense], loss: .meanSquaredError)
        let p = model.parameters.pointer
        for i in 0..<3 { for j in 0..<2 { p[i * 2 + j] = Float(w0[i][j]) } }
        for j in 0..<2 { p[6 + j] = Float(b0[j]) }
        let data = Dataset(
            name: "tiny", features: 3, classes: 2, values: x.joined().map { Float($0) }, labels: labels)
        let t = Trainer(
            checked: model, optimizer: .sgd(learningRate: 0.1),
            placements: Topology.detect().placement(workers: workers),
            batchSize: 2, seed: 1, pin: false, clipping: clipping)
        let records = t.fit(data, epochs: 1, shuffle: false)
        return (model, records[0])
    }

    @Test(
        "penalty gradient, clipnorm and global_clipnorm: two SGD steps equal the hand computation; the loss includes the penalty",
        arguments: [GradientClipping.none, .norm(0.3), .globalNorm(0.3)])
    func twoSteps(clipping: GradientClipping) {
        let (l1, l2, biasL2): (Float, Float, Float) = (0.05, 0.1, 0.2)
        let (w, b, loss) = byHand(lr: 0.1, l1: Double(l1), l2: Double(l2), biasL2: Double(biasL2), clipping: clipping)
        for workers in [1, 2] {
            let (model, record) = trained(workers: workers, l1: l1, l2: l2, biasL2: biasL2, clipping: clipping)
            let p = model.parameters.pointer
            for i in 0..<3 {
                for j in 0..<2 {
                    #expect(abs(Double(p[i * 2 + j]) - w[i][j]) < 1e-6, "W[\(i)][\(j)], \(workers) workers")
                }
            }
            for j in 0..<2 { #expect(abs(Double(p[6 + j]) - b[j]) < 1e-6, "b[\(j)], \(workers) workers") }
            #expect(abs(record.loss - loss) < 1e-6, "loss \(record.loss) vs \(loss)")
        }
        // The clipping really bites: the unclipped run ends elsewhere.
        if clipping != .none {
            let (plainW, _, _) = byHand(
                lr: 0.1, l1: Double(l1), l2: Double(l2), biasL2: Double(biasL2), clipping: .none)
            #expect(abs(plainW[0][0] - w[0][0]) > 1e-3)
        }
    }

    @Test("evaluate's loss includes the penalty, as Keras reports it")
    func evaluationPenalty() {
        let (model, _) = trained(workers: 1, l1: 0.05, l2: 0.1, biasL2: 0, clipping: .none)
        let t = Trainer(
            checked: model, optimizer: .sgd(), placements: Topology.detect().placement(workers: 1), batchSize: 2,
            seed: 1, pin: false)
        let data = Dataset(name: "tiny", features: 3, classes: 2, values: x.joined().map { Float($0) }, labels: labels)
        let p = model.parameters.pointer
        var penalty = 0.0
        for i in 0..<6 { penalty += 0.05 * Double(abs(p[i])) + 0.1 * Double(p[i] * p[i]) }
        #expect(abs(t.penalty() - penalty) < 1e-6)
        let plain = Sequential(inputWidth: 3, layers: [Dense(units: 2)], loss: .meanSquaredError)
        plain.parameters.pointer.update(from: p, count: 8)
        let tp = Trainer(
            checked: plain, optimizer: .sgd(), placements: Topology.detect().placement(workers: 1), batchSize: 2,
            seed: 1, pin: false)
        #expect(abs(t.evaluate(data).loss - tp.evaluate(data).loss - penalty) < 1e-6)
    }

    /// The schedule model with regularizers on every dense layer.
    func regularizedModel() -> Sequential {
        Sequential(
            inputWidth: 10,
            layers: [
                Dense(units: 96, activation: .relu, kernelRegularizer: Regularizer(l1: 1e-4, l2: 1e-3)),
                Dropout(rate: 0.2),
                Dense(units: 70, activation: .tanh, biasRegularizer: Regularizer(l2: 1e-2)),
                Dense(units: 4, activation: .softmax, kernelRegularizer: Regularizer(l1: 1e-3)),
            ], loss: .sparseCategoricalCrossentropy)
    }

    @Test(
        "weights_digest is the same for 1, 2, 3, 5, 16 and 64 workers with regularizers and every clipping mode",
        arguments: [GradientClipping.none, .value(0.05), .norm(0.5), .globalNorm(0.5)])
    func digests(clipping: GradientClipping) {
        func digest(_ workers: Int, _ policy: StepPlan.Policy) -> String {
            let model = regularizedModel()
            model.initialize(seed: 5)
            let t = Trainer(
                checked: model, optimizer: .rmsprop(learningRate: 0.01, momentum: 0.5),
                placements: Topology.detect().placement(workers: workers), batchSize: 128, seed: 5, pin: false,
                schedule: policy, clipping: clipping)
            _ = t.fit(fizzBuzz().train, epochs: 1)
            return model.weightsDigest()
        }
        let reference = digest(1, .rows)
        for workers in [2, 3, 5, 16, 64] {
            for policy in [StepPlan.Policy.rows, .auto, .widest] {
                #expect(digest(workers, policy) == reference, "\(workers) workers, \(policy)")
            }
        }
    }

    @Test("chunks cover every parameter once, in order, each within one tensor and one owner")
    func chunks() {
        let model = Sequential(inputWidth: 300, layers: [Dense(units: 100), Dense(units: 10)], loss: .meanSquaredError)
        let plan = StepPlan(model: model, batchSize: 64, workers: 4, clipsByNorm: true)
        var next = 0
        for chunk in plan.chunks {
            #expect(chunk.range.lowerBound == next && chunk.range.count <= StepPlan.chunkSize)
            next = chunk.range.upperBound
        }
        #expect(next == model.parameterCount)
        #expect(plan.chunks.count == 300 + 100 + 100 + 10)  // a chunk per kernel row, one per bias value
        // No chunk straddles two owners, whatever the workers and ranks.
        for (workers, ranks) in [(3, 1), (2, 3), (5, 2)] {
            for rank in 0..<ranks {
                let p = StepPlan(model: model, batchSize: 64, workers: workers, ranks: ranks, rank: rank)
                for (c, chunk) in p.chunks.enumerated() {
                    let l = chunk.layer
                    let parts = p.parameterParts[l]
                    let owners = Set(
                        (0..<parts).filter { part in
                            let s = model.layers[l].parameterSlices(part: part, of: parts)
                            let local =
                                chunk.range.lowerBound - model.offsets[l]..<chunk.range.upperBound - model.offsets[l]
                            return s.first.overlaps(local) || s.second.overlaps(local)
                        }.map { p.owner(l, part: $0) })
                    #expect(owners == [p.chunkOwners[c]], "chunk \(c), \(workers) workers × \(ranks) ranks")
                }
            }
        }
        #expect(plan.stages.suffix(4) == [.gradientNorms, .barrier, .clippedUpdate, .barrier])
    }
}
