import Foundation
import LoomEngine
import LoomNN
import Testing

@testable import LoomTape

/// Keras' SimpleDense example: relu(x·W + b), written with tensor operations.
final class SimpleDense: CustomLayer {
    let units: Int
    var w: Weight!
    var b: Weight!

    init(units: Int) {
        self.units = units
        super.init()
    }

    override func setUp(inputWidth: Int) -> Int {
        w = addWeight("kernel", shape: [inputWidth, units], initializer: .glorotUniform)
        b = addWeight("bias", shape: [units], initializer: .zeros)
        return units
    }

    override func call(_ x: Tensor) throws(TapeError) -> Tensor { try (x.matmul(w.value) + b.value).relu() }
}

/// y = γ ⊙ tanh(x) + β, one γ and β per feature (broadcast over the rows).
final class ScaledTanh: CustomLayer {
    var gamma: Weight!
    var beta: Weight!

    override func setUp(inputWidth: Int) -> Int {
        gamma = addWeight("gamma", shape: [inputWidth], initializer: .ones)
        beta = addWeight("beta", shape: [inputWidth], initializer: .zeros)
        return inputWidth
    }

    override func call(_ x: Tensor) throws(TapeError) -> Tensor { try x.tanh() * gamma.value + beta.value }
}

/// A layer whose call returns the wrong width.
final class Truncating: CustomLayer {
    override func setUp(inputWidth: Int) -> Int { inputWidth }
    override func call(_ x: Tensor) throws(TapeError) -> Tensor { try x.sum(axis: 1) }
}

/// Four classes of points in 8 dimensions, each around its own centre.
func clusters(_ n: Int, seed: UInt64) -> (x: [[Float]], y: [Int]) {
    var rng = Random(seed: seed)
    var centres: [[Float]] = []
    for _ in 0..<4 { centres.append((0..<8).map { _ in rng.nextUniform() * 4 - 2 }) }
    var x: [[Float]] = []
    var y: [Int] = []
    for i in 0..<n {
        let c = i % 4
        x.append(centres[c].map { $0 + (rng.nextUniform() - 0.5) * 1.5 })
        y.append(c)
    }
    return (x, y)
}

@Suite("Custom layers written with the tape, trained by the engine", .serialized)
struct CustomLayerTests {
    func model(_ layers: [any Layer], optimizer: OptimizerSpec = .adam(learningRate: 0.01)) throws -> Model {
        try Model(inputWidth: 8, layers: layers, loss: .sparseCategoricalCrossentropy, optimizer: optimizer, seed: 3)
    }

    @Test("a model with two custom layers learns, to the same weights_digest on 1, 2 and 3 workers")
    func workersDeterminism() throws {
        let (all, labels) = clusters(610, seed: 5)
        let (x, y) = (Array(all[..<410]), Array(labels[..<410]))
        let (tx, ty) = (Array(all[410...]), Array(labels[410...]))
        var digests: [Int: String] = [:]
        for workers in [1, 2, 3] {
            let m = try model([SimpleDense(units: 16), ScaledTanh(), Dense(units: 4, activation: .softmax)])
            let history = try m.fit(x: x, y: y, epochs: 8, batchSize: 64, workers: workers)
            #expect(history.last!.loss < history.first!.loss / 2, "\(history.map(\.loss))")
            let accuracy = try m.evaluate(x: tx, y: ty).accuracy
            #expect(accuracy > 0.9, "workers \(workers): accuracy \(accuracy)")
            digests[workers] = m.network.weightsDigest()
        }
        #expect(Set(digests.values).count == 1, "\(digests)")
    }

    @Test(
        "a tape-built dense layer trains bit for bit like the built-in Dense (the same GEMMs and row-order sums on the same dz)"
    )
    func matchesDense() throws {
        let (x, y) = clusters(256, seed: 7)
        let custom = try model(
            [SimpleDense(units: 16), Dense(units: 4, activation: .softmax)], optimizer: .sgd(learningRate: 0.1))
        let builtIn = try model(
            [Dense(units: 16, activation: .relu), Dense(units: 4, activation: .softmax)],
            optimizer: .sgd(learningRate: 0.1))
        // The same initializers in the same order: the same initial weights.
        #expect(custom.network.weightsDigest() == builtIn.network.weightsDigest())
        try custom.fit(x: x, y: y, epochs: 2, batchSize: 32, workers: 2)
        try builtIn.fit(x: x, y: y, epochs: 2, batchSize: 32, workers: 2)
        let a = custom.network.parameters.array
        let b = builtIn.network.parameters.array
        var worst: Float = 0
        for i in a.indices { worst = max(worst, abs(a[i] - b[i]) / max(1, abs(b[i]))) }
        #expect(worst == 0, "largest relative difference \(worst)")
    }

    @Test("a custom layer whose output has the wrong shape is refused when the model is built")
    func refusesWrongShape() {
        #expect(throws: LoomError.self) { try model([Truncating(), Dense(units: 4, activation: .softmax)]) }
        do {
            _ = try model([Truncating(), Dense(units: 4, activation: .softmax)])
        } catch {
            #expect("\(error)".contains("Truncating.call returned a tensor of shape (2,) for 2 rows; expected (2, 8)"))
        }
    }

    @Test("a custom layer's weight read outside its call is a thrown error")
    func weightOutsideCall() throws {
        let layer = SimpleDense(units: 3)
        _ = try model([layer, Dense(units: 4, activation: .softmax)])
        let tape = GradientTape()
        #expect(throws: TapeError.self) { try tape.record { () throws(TapeError) in _ = try layer.w.value } }
    }
}

/// Cross-entropy from probabilities, row by row: −Σ_j t_j log p_j.
final class CrossEntropy: CustomLoss {
    override func call(predictions p: Tensor, targets t: Tensor) throws(TapeError) -> Tensor {
        try -(t * p.clip(1e-7, 1 - 1e-7).log()).sum(axis: 1)
    }
}

/// The mean over the outputs of the squared error.
final class SquaredError: CustomLoss {
    override func call(predictions p: Tensor, targets t: Tensor) throws(TapeError) -> Tensor {
        let d = try p - t
        return try (d * d).mean(axis: 1)
    }
}

/// A "loss" that sums over the batch: the wrong shape.
final class BatchTotal: CustomLoss {
    override func call(predictions p: Tensor, targets t: Tensor) throws(TapeError) -> Tensor { try (p - t).sum() }
}

@Suite("Custom losses written with the tape", .serialized)
struct CustomLossTests {
    @Test("a custom cross-entropy trains a softmax model, to the same weights_digest on 1, 2 and 3 workers")
    func workersDeterminism() throws {
        let (all, labels) = clusters(610, seed: 5)
        let (x, y) = (Array(all[..<410]), Array(labels[..<410]))
        var digests: [Int: String] = [:]
        for workers in [1, 2, 3] {
            let m = try Model(
                inputWidth: 8, layers: [SimpleDense(units: 16), Dense(units: 4, activation: .softmax)],
                loss: CrossEntropy(), optimizer: .adam(learningRate: 0.01), seed: 3)
            let history = try m.fit(x: x, y: y, epochs: 8, batchSize: 64, workers: workers)
            #expect(history.last!.loss < history.first!.loss / 2, "\(history.map(\.loss))")
            let accuracy = try m.evaluate(x: Array(all[410...]), y: Array(labels[410...])).accuracy
            #expect(accuracy > 0.9, "workers \(workers): accuracy \(accuracy)")
            digests[workers] = m.network.weightsDigest()
        }
        #expect(Set(digests.values).count == 1, "\(digests)")
    }

    @Test("a custom squared error trains like mean_squared_error (within 1e-5 relative after 3 epochs)")
    func matchesBuiltIn() throws {
        let (x, labels) = clusters(256, seed: 9)
        let y = zip(x, labels).map { row, c in [row.reduce(0, +) / 8, Float(c) / 4] }
        func model(_ custom: Bool) throws -> Model {
            let layers: [any Layer] = [Dense(units: 16, activation: .tanh), Dense(units: 2)]
            return custom
                ? try Model(inputWidth: 8, layers: layers, loss: SquaredError(), optimizer: .sgd(learningRate: 0.05))
                : try Model(inputWidth: 8, layers: layers, loss: .meanSquaredError, optimizer: .sgd(learningRate: 0.05))
        }
        let (a, b) = (try model(true), try model(false))
        let ha = try a.fit(x: x, y: y, epochs: 3, batchSize: 32, workers: 2)
        let hb = try b.fit(x: x, y: y, epochs: 3, batchSize: 32, workers: 2)
        #expect(abs(ha.last!.loss - hb.last!.loss) <= 1e-5 * hb.last!.loss, "\(ha.last!.loss) vs \(hb.last!.loss)")
        let (wa, wb) = (a.network.parameters.array, b.network.parameters.array)
        var worst: Float = 0
        for i in wa.indices { worst = max(worst, abs(wa[i] - wb[i]) / max(1, abs(wb[i]))) }
        #expect(worst < 1e-5, "largest relative difference \(worst)")
    }

    @Test("a custom loss that does not return one loss per row is refused when the model is built")
    func refusesBatchReduction() {
        do {
            _ = try Model(inputWidth: 8, layers: [Dense(units: 4, activation: .softmax)], loss: BatchTotal())
            Issue.record("expected a refusal")
        } catch {
            #expect("\(error)".contains("BatchTotal.call returned a tensor of shape () for 2 rows"), "\(error)")
        }
    }
}

@Suite("Saving and loading models with custom layers and losses", .serialized)
struct CustomSaveLoadTests {
    let path = FileManager.default.temporaryDirectory.appendingPathComponent("loom-custom-\(getpid()).safetensors").path

    @Test("save(to:) names the custom layers; load(from:layers:) restores the weights, load(from:) says what it needs")
    func customLayers() throws {
        defer { try? FileManager.default.removeItem(atPath: path) }
        let (x, y) = clusters(128, seed: 4)
        let m = try Model(inputWidth: 8, loss: .sparseCategoricalCrossentropy) {
            SimpleDense(units: 16)
            ScaledTanh()
            Dense(units: 4, activation: .softmax)
        }
        try m.fit(x: x, y: y, epochs: 2, batchSize: 32, workers: 2)
        try m.save(to: path)
        do {
            _ = try Model.load(from: path)
            Issue.record("expected a refusal")
        } catch {
            #expect("\(error)".contains("holds custom layers (0: SimpleDense, 1: ScaledTanh)"), "\(error)")
        }
        let back = try Model.load(from: path) {
            SimpleDense(units: 16)
            ScaledTanh()
            Dense(units: 4, activation: .softmax)
        }
        #expect(back.network.weightsDigest() == m.network.weightsDigest())
        #expect(try back.predict(Array(x[0..<5])) == m.predict(Array(x[0..<5])))
    }

    @Test("a model trained on a custom loss is loaded with that loss again")
    func customLoss() throws {
        defer { try? FileManager.default.removeItem(atPath: path) }
        let (x, y) = clusters(128, seed: 4)
        let m = try Model(inputWidth: 8, loss: CrossEntropy()) {
            Dense(units: 16, activation: .relu)
            Dense(units: 4, activation: .softmax)
        }
        try m.fit(x: x, y: y, epochs: 2, batchSize: 32, workers: 2)
        try m.save(to: path)
        #expect(throws: LoomError.self) { try Model.load(from: path) }
        let back = try Model.load(from: path, loss: CrossEntropy())
        #expect(back.network.weightsDigest() == m.network.weightsDigest())
        #expect(back.network.customLoss?.name == "CrossEntropy")
    }
}
