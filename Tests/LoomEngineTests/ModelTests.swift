import Foundation
import LoomConfig
import LoomData
import LoomNN
import LoomTestSupport
import Testing

@testable import LoomEngine

@Suite("The Keras-style Model API", .serialized)
struct ModelTests {
    func fizzBuzzArrays() -> (x: [[Float]], y: [Int]) {
        let d = fizzBuzz().train
        var rows = [Float](repeating: 0, count: d.count * d.features)
        var labels = [Int32](repeating: 0, count: d.count)
        rows.withUnsafeMutableBufferPointer { r in
            labels.withUnsafeMutableBufferPointer { l in
                d.gather(range: 0, count: d.count, into: r.baseAddress!, ld: d.features, labels: l.baseAddress!)
            }
        }
        return ((0..<d.count).map { Array(rows[$0 * 10..<($0 + 1) * 10]) }, labels.map { Int($0) })
    }

    func model() throws -> Model {
        try Model(
            inputWidth: 10, layers: [Dense(units: 32, activation: .relu), Dense(units: 4, activation: .softmax)],
            loss: .sparseCategoricalCrossentropy, optimizer: .adam(learningRate: 0.01), seed: 7)
    }

    @Test("fit on arrays learns, with the same weights for 1 and 3 workers; evaluate, predict and save agree")
    func fitEvaluatePredict() throws {
        let (x, y) = fizzBuzzArrays()
        var digests: [String] = []
        for workers in [1, 3] {
            let m = try model()
            let history = try m.fit(x: x, y: y, epochs: 30, batchSize: 64, workers: workers)
            #expect(history.count == 30 && history.last!.loss < history.first!.loss)
            digests.append(m.network.weightsDigest())
        }
        #expect(digests[0] == digests[1])
        let m = try model()
        try m.fit(x: x, y: y, epochs: 30, batchSize: 64, validationSplit: 0.1)
        let e = try m.evaluate(x: x, y: y)
        #expect(e.count == x.count && e.accuracy > 0.5)
        let p = try m.predict(Array(x.prefix(5)))
        #expect(p.count == 5 && p.allSatisfy { abs($0.reduce(0, +) - 1) < 1e-4 })
        // Saved weights read back by the command line's loader predict the same.
        let path = temporaryFolder("loom-model") + "/model.safetensors"
        try m.save(to: path)
        let saved = try SavedModel(path: path)
        #expect(try saved.predict(Array(x.prefix(5))) == p)
        // A second fit goes on from the optimizer's state (the step count continues).
        try m.fit(x: x, y: y, epochs: 1, batchSize: 64)
        #expect(m.trainerStep == 30 * 13 + 15)  // 830 samples in batches of 64, then all 923
    }

    @Test("misuse is a thrown error with one clear line, never a crash")
    func misuse() throws {
        func expectError(_ text: String, _ body: () throws -> Void) {
            do {
                try body()
                Issue.record("no error for: \(text)")
            } catch let error as LoomError {
                #expect(error.description.contains(text) && !error.description.contains("\n"), "\(error)")
            } catch {
                Issue.record("not a LoomError: \(error)")
            }
        }
        expectError("needs a softmax output") {
            _ = try Model(inputWidth: 4, layers: [Dense(units: 3)], loss: .sparseCategoricalCrossentropy)
        }
        expectError("at least one layer") { _ = try Model(inputWidth: 4, layers: [], loss: .meanSquaredError) }
        let m = try model()
        let (x, y) = fizzBuzzArrays()
        expectError("x has 3 rows but y has 2 labels") { try m.fit(x: Array(x.prefix(3)), y: [0, 1], epochs: 1) }
        expectError("row 1 of x has 2 values; the model takes 10") {
            try m.fit(x: [x[0], [1, 2]], y: [0, 1], epochs: 1)
        }
        expectError("not a finite number") {
            try m.fit(x: [x[0], [Float](repeating: .nan, count: 10)], y: [0, 1], epochs: 1)
        }
        expectError("label 9") { try m.fit(x: Array(x.prefix(2)), y: [0, 9], epochs: 1) }
        expectError("more than the batch size 4") { try m.fit(x: x, y: y, epochs: 1, batchSize: 4, workers: 5) }
        expectError("at least one epoch") { try m.fit(x: x, y: y, epochs: 0) }
        expectError("validationSplit 1.5") { try m.fit(x: x, y: y, epochs: 1, validationSplit: 1.5) }
    }
}

@Suite("Layers written as a block")
struct LayerBuilderTests {
    @Test("the builder keeps order, takes if / else / for, and gives the array initializer's model")
    func builder() throws {
        for dropout: Float in [0, 0.5] {
            let built = try Model(inputWidth: 10, loss: .sparseCategoricalCrossentropy, seed: 7) {
                Dense(units: 32, activation: .relu)
                if dropout > 0 { Dropout(rate: dropout) }
                for _ in 0..<2 { Dense(units: 8, activation: .tanh) }
                if dropout > 0 { Dense(units: 4, activation: .softmax) } else { Dense(units: 4, activation: .softmax) }
            }
            var layers: [any Layer] = [Dense(units: 32, activation: .relu)]
            if dropout > 0 { layers.append(Dropout(rate: dropout)) }
            layers += [Dense(units: 8, activation: .tanh), Dense(units: 8, activation: .tanh)]
            layers.append(Dense(units: 4, activation: .softmax))
            let array = try Model(inputWidth: 10, layers: layers, loss: .sparseCategoricalCrossentropy, seed: 7)
            #expect(built.network.layers.map(\.typeName) == array.network.layers.map(\.typeName))
            #expect(built.network.widths == array.network.widths)
            #expect(built.network.weightsDigest() == array.network.weightsDigest())
        }
    }
}

@Suite("Keras callbacks in Model.fit", .serialized)
struct ModelCallbackTests {
    func model() throws -> Model {
        try Model(inputWidth: 10, loss: .sparseCategoricalCrossentropy, optimizer: .adam(learningRate: 0.01), seed: 7) {
            Dense(units: 16, activation: .relu)
            Dense(units: 4, activation: .softmax)
        }
    }

    @Test("early stopping ends fit after the epoch it decides on, and says so")
    func earlyStopping() throws {
        let m = try model()
        // No epoch improves the loss by 10: the second epoch is the first without improvement.
        let history = try m.fit(
            fizzBuzz().train, epochs: 20, batchSize: 64,
            callbacks: [.earlyStopping(monitor: "loss", minDelta: 10, patience: 1)], workers: 2)
        #expect(history.count == 2)
        #expect(m.callbackMessages.first?.hasPrefix("early stopping after epoch 2") == true, "\(m.callbackMessages)")
    }

    @Test("reduce_lr_on_plateau lowers the learning rate when the monitored loss stalls")
    func reduceLearningRate() throws {
        let m = try model()
        try m.fit(
            fizzBuzz().train, epochs: 3, batchSize: 64, validationSplit: 0.2,
            callbacks: [.reduceLROnPlateau(factor: 0.5, patience: 1, minDelta: 10)], workers: 2)
        #expect(
            m.callbackMessages.contains { $0.contains("reducing the learning rate to 0.005") }, "\(m.callbackMessages)")
    }

    @Test("a callback that cannot run is a thrown one-line error before training")
    func refusals() throws {
        let m = try model()
        let data = fizzBuzz().train
        func message(_ callbacks: [CallbackConfig], split: Double = 0) -> String {
            do {
                try m.fit(data, epochs: 1, batchSize: 64, validationSplit: split, callbacks: callbacks, workers: 1)
                return "no error"
            } catch { return "\(error)" }
        }
        #expect(message([.earlyStopping()]).contains("val_loss needs validation data; pass validationSplit"))
        #expect(message([.earlyStopping(monitor: "precision")]).contains("monitor 'precision': expected one of"))
        #expect(
            message([.reduceLROnPlateau(monitor: "loss", factor: 2)]).contains(
                "factor 2.0: expected a factor in (0, 1)"))
        #expect(m.trainerStep == 0)
    }
}

@Suite("Trainer's public initializer")
struct TrainerInitTests {
    @Test("more workers than rows, or none, is a thrown one-line error, not a crash")
    func refusals() {
        let model = Sequential(inputWidth: 4, loss: .sparseCategoricalCrossentropy) {
            Dense(units: 3, activation: .softmax)
        }
        let topology = Topology(nodes: [NUMANode(id: 0, cpus: [0, 1, 2, 3])])
        func message(workers: Int, batch: Int) -> String {
            do {
                _ = try Trainer(
                    model: model, optimizer: .sgd(), placements: topology.placement(workers: workers),
                    batchSize: batch, seed: 1, pin: false)
                return "no error"
            } catch { return "\(error)" }
        }
        #expect(message(workers: 4, batch: 2).contains("4 workers for a batch of 2: every worker needs a row"))
        #expect(message(workers: 0, batch: 2).contains("no workers"))
        #expect(message(workers: 1, batch: 0).contains("batch size 0"))
        #expect(message(workers: 2, batch: 2) == "no error")
    }
}

@Suite("Layer arguments a Model refuses")
struct LayerRefusalTests {
    @Test("Dense(units: 0) and Dropout(rate: 1) are thrown one-line errors when the model is built, not crashes")
    func refusals() {
        func message(_ layers: [any Layer]) -> String {
            do {
                _ = try Model(inputWidth: 4, layers: layers, loss: .meanSquaredError)
                return "no error"
            } catch { return "\(error)" }
        }
        #expect(message([Dense(units: 0)]).contains("layer 0: Dense(units: 0): a dense layer needs at least one unit"))
        #expect(
            message([Dense(units: 3), Dropout(rate: 1)]).contains(
                "layer 1: Dropout(rate: 1.0): expected a rate in [0, 1)"))
        #expect(message([Dense(units: 3), Dropout(rate: 0.5), Dense(units: 1)]) == "no error")
    }
}

@Suite("Model.load", .serialized)
struct ModelLoadTests {
    @Test("a saved model loads back with its weights, loss and optimizer, and trains on from there")
    func roundTrip() throws {
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("loom-load-\(getpid()).safetensors")
            .path
        defer { try? FileManager.default.removeItem(atPath: path) }
        let m = try Model(inputWidth: 10, loss: .sparseCategoricalCrossentropy, optimizer: .adam(learningRate: 0.01)) {
            Dense(units: 16, activation: .relu)
            Dropout(rate: 0.25)
            Dense(units: 4, activation: .softmax)
        }
        try m.fit(fizzBuzz().train, epochs: 2, batchSize: 64, workers: 2)
        try m.save(to: path)
        let back = try Model.load(from: path)
        #expect(back.network.weightsDigest() == m.network.weightsDigest())
        #expect(back.network.loss == .sparseCategoricalCrossentropy && back.optimizer == m.optimizer)
        #expect(try back.evaluate(fizzBuzz().test).loss == m.evaluate(fizzBuzz().test).loss)
        let history = try back.fit(fizzBuzz().train, epochs: 1, batchSize: 64, workers: 1)
        #expect(history.count == 1 && back.network.weightsDigest() != m.network.weightsDigest())
    }
}
