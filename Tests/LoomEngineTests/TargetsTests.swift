import Foundation
import LoomData
import LoomNN
import Testing

@testable import LoomEngine

/// Samples x in [−1, 1]³ from a seeded generator.
func uniformRows(_ n: Int, seed: UInt64) -> [[Float]] {
    var rng = Random(seed: seed)
    return (0..<n).map { _ in (0..<3).map { _ in rng.nextUniform() * 2 - 1 } }
}

@Suite("Regression, soft targets and weighted losses, end to end", .serialized)
struct TargetsTests {
    @Test(
        "regression: y = 2a − b + c/2 + 0.5 learnt to a small error (MAE and RMSE), the same digest on 1, 2, 3 workers")
    func regression() throws {
        let x = uniformRows(512, seed: 5)
        let y = x.map { [2 * $0[0] - $0[1] + 0.5 * $0[2] + 0.5] }
        var digests: Set<String> = []
        for workers in [1, 2, 3] {
            let m = try Model(
                inputWidth: 3, layers: [Dense(units: 16, activation: .tanh), Dense(units: 1)],
                loss: .meanSquaredError, optimizer: .adam(learningRate: 0.01), seed: 3)
            let history = try m.fit(x: x, y: y, epochs: 40, batchSize: 32, validationSplit: 0.25, workers: workers)
            #expect(history.allSatisfy { $0.metric == .meanAbsoluteError })
            #expect(history.last!.accuracy < 0.05 && history.last!.valAccuracy! < 0.06, "\(history.last!)")
            let e = try m.evaluate(x: x, y: y)
            #expect(e.metric == .meanAbsoluteError && e.meanAbsoluteError! < 0.06 && e.rootMeanSquaredError! < 0.08)
            // The reported loss is the mean squared error itself.
            #expect(abs(e.loss - e.rootMeanSquaredError! * e.rootMeanSquaredError!) < 1e-5)
            digests.insert(m.network.weightsDigest())
        }
        #expect(digests.count == 1)
    }

    @Test("several regression outputs under mean_absolute_error and huber: the error falls")
    func multiOutput() throws {
        let x = uniformRows(256, seed: 9)
        let y = x.map { [$0[0] + $0[1], $0[1] * $0[2], -$0[0]] }
        for loss in [Loss.meanAbsoluteError, .huber] {
            let m = try Model(
                inputWidth: 3, layers: [Dense(units: 32, activation: .relu), Dense(units: 3)], loss: loss,
                lossOptions: LossOptions(delta: 0.5), optimizer: .adam(learningRate: 0.01), seed: 2)
            let before = try m.evaluate(x: x, y: y).meanAbsoluteError!
            try m.fit(x: x, y: y, epochs: 30, batchSize: 32, workers: 2)
            let after = try m.evaluate(x: x, y: y).meanAbsoluteError!
            #expect(after < before / 3 && after < 0.12, "\(loss): \(before) → \(after)")
        }
    }

    @Test("class_weight gives the digest of the same weights given per sample, and differs from no weights")
    func classWeightIsSampleWeight() throws {
        let x = uniformRows(300, seed: 4)
        let y = x.map { $0[0] + 0.3 * $0[1] > 0.4 ? 1 : 0 }  // about a third are class 1
        func train(sampleWeight: [Float]? = nil, classWeight: [Int: Double]? = nil) throws -> (String, Double) {
            let m = try Model(
                inputWidth: 3, layers: [Dense(units: 8, activation: .relu), Dense(units: 2, activation: .softmax)],
                loss: .sparseCategoricalCrossentropy, optimizer: .sgd(learningRate: 0.1), seed: 1)
            let h = try m.fit(
                x: x, y: y, epochs: 3, batchSize: 30, sampleWeight: sampleWeight, classWeight: classWeight, workers: 2)
            return (m.network.weightsDigest(), h.last!.loss)
        }
        let byClass = try train(classWeight: [1: 3])
        let bySample = try train(sampleWeight: y.map { $0 == 1 ? 3 : 1 })
        let plain = try train()
        #expect(byClass.0 == bySample.0 && byClass.1 == bySample.1)
        #expect(byClass.0 != plain.0)
        // Both kinds together multiply.
        let both = try train(sampleWeight: y.map { $0 == 1 ? 1.5 : 1 }, classWeight: [1: 2])
        #expect(both.0 == byClass.0)
    }

    @Test("one-hot targets with categorical_crossentropy train like class labels (within float rounding)")
    func oneHotMatchesLabels() throws {
        let x = uniformRows(200, seed: 6)
        let y = x.map { $0[0] > 0 ? ($0[1] > 0 ? 2 : 1) : 0 }
        func model(_ loss: Loss) throws -> Model {
            try Model(
                inputWidth: 3, layers: [Dense(units: 8, activation: .relu), Dense(units: 3, activation: .softmax)],
                loss: loss, optimizer: .sgd(learningRate: 0.1), seed: 4)
        }
        let sparse = try model(.sparseCategoricalCrossentropy)
        let a = try sparse.fit(x: x, y: y, epochs: 2, batchSize: 20, workers: 1)
        let onehot = try model(.categoricalCrossentropy)
        let b = try onehot.fit(
            x: x, y: y.map { c in (0..<3).map { $0 == c ? Float(1) : 0 } }, epochs: 2, batchSize: 20, workers: 1)
        let wa = sparse.network.parameters.array
        let wb = onehot.network.parameters.array
        #expect(zip(wa, wb).allSatisfy { abs($0 - $1) < 1e-5 })
        #expect(abs(a.last!.loss - b.last!.loss) < 1e-5 && a.last!.accuracy == b.last!.accuracy)
    }

    @Test("binary_crossentropy from logits on soft targets learns the probability")
    func softBinary() throws {
        let x = uniformRows(400, seed: 8)
        let p = x.map { [1 / (1 + Foundation.exp(-3 * $0[0]))] }
        let m = try Model(
            inputWidth: 3, layers: [Dense(units: 8, activation: .tanh), Dense(units: 1)], loss: .binaryCrossentropy,
            lossOptions: LossOptions(fromLogits: true), optimizer: .adam(learningRate: 0.02), seed: 1)
        try m.fit(x: x, y: p, epochs: 40, batchSize: 40, workers: 2)
        let predicted = try m.predict(Array(x.prefix(50)))
        let error = zip(predicted, p).map { abs($0[0] - $1[0]) }.reduce(0, +) / 50
        #expect(error < 0.03, "mean |p̂ − p| \(error)")
    }

    @Test("misuse of targets and weights: one clear thrown line")
    func misuse() throws {
        let x = uniformRows(10, seed: 1)
        let regression = try Model(inputWidth: 3, layers: [Dense(units: 2)], loss: .meanSquaredError)
        let classifier = try Model(
            inputWidth: 3, layers: [Dense(units: 2, activation: .softmax)], loss: .sparseCategoricalCrossentropy)
        let binary = try Model(
            inputWidth: 3, layers: [Dense(units: 1, activation: .sigmoid)], loss: .binaryCrossentropy)
        let cases: [(String, () throws -> Void)] = [
            (
                "row 0 of y has 1 values; the model has 2 outputs",
                { try regression.fit(x: x, y: x.map { [$0[0]] }, epochs: 1) }
            ),
            (
                "row 3 of y holds a value that is not a finite number",
                {
                    var y = x.map { [$0[0], $0[1]] }
                    y[3][1] = .nan
                    try regression.fit(x: x, y: y, epochs: 1)
                }
            ),
            (
                "sparse_categorical_crossentropy takes class indices",
                {
                    try classifier.fit(x: x, y: x.map { _ in [0.5, 0.5] }, epochs: 1)
                }
            ),
            (
                "reads targets as probabilities (in [0, 1])",
                { try binary.fit(x: x, y: x.map { [$0[0] * 3] }, epochs: 1) }
            ),
            (
                "sampleWeight has 3 values for 10 samples",
                {
                    try classifier.fit(x: x, y: [Int](repeating: 0, count: 10), epochs: 1, sampleWeight: [1, 2, 3])
                }
            ),
            (
                "sampleWeight[1] = -1.0",
                {
                    try classifier.fit(
                        x: x, y: [Int](repeating: 0, count: 10), epochs: 1,
                        sampleWeight: [1, -1] + [Float](repeating: 1, count: 8))
                }
            ),
            (
                "classWeight names class 5, but the model has 2 classes",
                {
                    try classifier.fit(x: x, y: [Int](repeating: 0, count: 10), epochs: 1, classWeight: [5: 2])
                }
            ),
            (
                "from_logits applies to the cross-entropy losses only",
                {
                    _ = try Model(
                        inputWidth: 3, layers: [Dense(units: 1)], loss: .meanSquaredError,
                        lossOptions: LossOptions(fromLogits: true))
                }
            ),
        ]
        for (expected, body) in cases {
            do {
                try body()
                Issue.record("no error for: \(expected)")
            } catch {
                #expect("\(error)".contains(expected) && !"\(error)".contains("\n"), "\(error)")
            }
        }
    }
}
