import Foundation
import LoomConfig
import LoomNN
import Testing

@testable import LoomEngine

/// Callbacks fed scripted epoch metrics (Keras 3's semantics), on a real trainer.
@Suite("Callbacks")
struct CallbackTests {
    func callbacks(_ yaml: String) throws -> (Callbacks, TrainingRun) {
        let text = """
            model:
              layers:
                - {type: dense, units: 4, activation: tanh}
                - {type: dense, units: 2, activation: softmax}
            loss: sparse_categorical_crossentropy
            optimizer: {name: sgd, learning_rate: 0.1}
            data: {dataset: xor}
            training: {epochs: 10, batch_size: 4, workers: 1}
            callbacks:
              - \(yaml)
            """
        let config = try ConfigLoader.parse(text, file: "c.yaml")
        let run = try TrainingRun(config: config, pin: false)
        return (Callbacks(config, trainer: run.trainer), run)
    }

    func record(_ epoch: Int, loss: Double) -> EpochRecord {
        EpochRecord(
            epoch: epoch, steps: 1, samples: 4, fraction: 1, globalStep: epoch, loss: loss, accuracy: 0.5, valLoss: nil,
            valAccuracy: nil, seconds: 1, samplesPerSecond: 4)
    }

    /// The epoch after which the callbacks stop, or nil.
    func stopEpoch(_ c: Callbacks, _ losses: [Double]) -> Int? {
        for (i, loss) in losses.enumerated() {
            let r = record(i + 1, loss: loss)
            c.epochEnded(r)
            if c.stopAfterEpoch(r) { return i + 1 }
        }
        return nil
    }

    @Test("early_stopping: patience counts epochs without improvement; min_delta sets what counts")
    func earlyStopping() throws {
        #expect(
            stopEpoch(
                try callbacks("{name: early_stopping, monitor: loss, patience: 2}").0, [1, 0.9, 0.95, 0.91, 0.92]) == 4)
        #expect(
            stopEpoch(
                try callbacks("{name: early_stopping, monitor: loss, patience: 2, min_delta: 0.05}").0,
                [1, 0.97, 0.96, 0.9])
                == 3)
        #expect(
            stopEpoch(try callbacks("{name: early_stopping, monitor: loss, patience: 2}").0, [1, 0.9, 0.8, 0.7]) == nil)
        // Never after the first epoch (Keras: epoch > 0), and higher is better for accuracy in auto mode.
        #expect(stopEpoch(try callbacks("{name: early_stopping, monitor: loss, patience: 0}").0, [1, 2]) == 2)
    }

    @Test("restore_best_weights puts back the best epoch's weights when stopping")
    func restoreBest() throws {
        let (c, run) = try callbacks("{name: early_stopping, monitor: loss, patience: 1, restore_best_weights: true}")
        let model = run.model
        c.epochEnded(record(1, loss: 1))
        let best = model.weightsDigest()
        model.parameters.pointer[0] += 1  // "training" moves the weights on
        c.epochEnded(record(2, loss: 2))
        #expect(c.stopAfterEpoch(record(2, loss: 2)))
        #expect(model.weightsDigest() == best)
    }

    @Test("reduce_lr_on_plateau: factor after patience, cooldown, never below min_lr")
    func reduceLR() throws {
        let (c, run) = try callbacks(
            "{name: reduce_lr_on_plateau, monitor: loss, patience: 1, factor: 0.5, cooldown: 1, min_lr: 0.02}")
        var rates: [Float] = []
        for (i, loss) in [1.0, 1.0, 1.0, 1.0, 0.5, 0.5, 0.5].enumerated() {
            c.epochEnded(record(i + 1, loss: loss))
            rates.append(run.trainer.optimizer.learningRate(step: i + 2))
        }
        #expect(rates == [0.1, 0.05, 0.025, 0.02, 0.02, 0.02, 0.02], "\(rates)")
    }

    @Test("a monitor of validation metrics without validation data, or with a schedule, is refused")
    func refused() {
        do {
            _ = try callbacks("{name: early_stopping, monitor: val_loss}")
            Issue.record("accepted")
        } catch {
            #expect("\(error)".contains("training.validation_split"))
        }
    }
}
