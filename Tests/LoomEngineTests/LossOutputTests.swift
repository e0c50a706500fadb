import Foundation
import LoomConfig
import LoomKernels
import LoomNN
import Testing

@testable import LoomEngine

/// Every (loss, output activation, output width, layer kind, dropout after) combination: refused when the config
/// is loaded, or trained a few steps on data whose labels fit (under AddressSanitizer in CI, with the debug
/// build's label assertions at every loss kernel).
@Suite("Losses and output layers")
struct LossOutputTests {
    /// How the output end of the model is written.
    enum Ending: String, CaseIterable {
        case denseActivation  // dense(units, activation)
        case activationLayer  // dense(units, linear), then activation(activation)
        case dropoutAfter  // dense(units, activation), then dropout
    }

    func config(_ loss: Loss, _ activation: ActivationKind, units: Int, _ ending: Ending) -> String {
        let last: String
        switch ending {
        case .denseActivation: last = "- {type: dense, units: \(units), activation: \(activation.rawValue)}"
        case .activationLayer:
            last = "- {type: dense, units: \(units)}\n    - {type: activation, activation: \(activation.rawValue)}"
        case .dropoutAfter:
            last =
                "- {type: dense, units: \(units), activation: \(activation.rawValue)}\n    - {type: dropout, rate: 0.1}"
        }
        return """
            model:
              layers:
                - {type: dense, units: 4, activation: tanh}
                \(last)
            loss: \(loss.rawValue)
            optimizer: {name: sgd, learning_rate: 0.05}
            data: {dataset: xor}
            training: {epochs: 5, batch_size: 4, workers: 2}
            """
    }

    /// The rule the loader must apply, written out independently of `Loss.refusal`.
    func supported(_ loss: Loss, _ activation: ActivationKind, units: Int, _ ending: Ending) -> Bool {
        if loss.isCrossEntropy { return activation == .softmax && units >= 2 && ending != .dropoutAfter }
        if loss == .binaryCrossentropy { return activation == .sigmoid && units == 1 && ending != .dropoutAfter }
        return !(activation == .softmax && units == 1)
    }

    @Test("each combination is trained with finite losses or refused at load time with one line naming the fix")
    func matrix() throws {
        var trained = 0
        var refused = 0
        for loss in Loss.allCases {
            for activation in ActivationKind.allCases {
                for units in [1, 2, 3] {
                    for ending in Ending.allCases {
                        let text = config(loss, activation, units: units, ending)
                        let what = "\(loss.rawValue), \(activation.rawValue), \(units) units, \(ending)"
                        if supported(loss, activation, units: units, ending) {
                            let config = try ConfigLoader.parse(text, file: "m.yaml")
                            let run = try TrainingRun(config: config, pin: false)
                            var options = RunOptions()
                            options.maxSteps = 3
                            let result = try run.run(options)
                            #expect(result.steps == 3, "\(what)")
                            let loss = try #require(run.trainer.evaluate(run.data.test).loss as Double?)
                            #expect(loss.isFinite, "\(what)")
                            trained += 1
                        } else {
                            do {
                                _ = try ConfigLoader.parse(text, file: "m.yaml")
                                Issue.record("accepted: \(what)")
                            } catch {
                                #expect(error.keyPath == "loss", "\(what): \(error)")
                                #expect(!error.description.contains("\n"))
                                #expect(
                                    ["use ", "set its", "move the dropout"].contains { error.message.contains($0) },
                                    "\(what): \(error)")
                            }
                            refused += 1
                        }
                    }
                }
            }
        }
        #expect(trained > 0 && refused > 0)
    }

    @Test("a one-output model with sparse_categorical_crossentropy is refused (it would index past the row)")
    func oneOutputCrossEntropy() {
        do {
            _ = try ConfigLoader.parse(
                config(.sparseCategoricalCrossentropy, .sigmoid, units: 1, .denseActivation), file: "x.yaml")
            Issue.record("accepted")
        } catch {
            #expect(error.description.contains("needs a softmax"))
            #expect(error.description.contains("mean_squared_error"))
        }
        // --set reaches the same check.
        do {
            _ = try ConfigLoader.parse(
                config(.sparseCategoricalCrossentropy, .softmax, units: 2, .denseActivation), file: "x.yaml",
                overrides: ["model.layers.1.units=1"])
            Issue.record("accepted")
        } catch {
            #expect(error.description.contains("at least 2"))
        }
    }

    @Test("labels beyond the outputs are refused before training, naming the sample and the fix")
    func labelRange() throws {
        // FizzBuzz has labels 0...3.
        for (loss, units, activation) in [
            (Loss.sparseCategoricalCrossentropy, 3, ActivationKind.softmax), (.meanSquaredError, 1, .sigmoid),
            (.meanSquaredError, 3, .linear),
        ] {
            let text = config(loss, activation, units: units, .denseActivation).replacingOccurrences(
                of: "dataset: xor", with: "dataset: fizzbuzz")
            let config = try ConfigLoader.parse(text, file: "f.yaml")
            do {
                _ = try TrainingRun(config: config, pin: false)
                Issue.record("accepted \(loss) with \(units) outputs")
            } catch {
                #expect(error.description.contains("has label 3"), "\(error)")
                #expect(error.exitCode == 1)
            }
        }
    }
}
