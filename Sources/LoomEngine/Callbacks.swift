// Keras callbacks, run at the end of each epoch with Keras 3's semantics:
//   early_stopping        stop when `monitor` has not improved by more than min_delta for `patience` epochs;
//                         with restore_best_weights, put back the best epoch's weights when stopping
//   reduce_lr_on_plateau  multiply the learning rate by `factor` (not below min_lr) after `patience` epochs
//                         without an improvement of more than min_delta, then wait `cooldown` epochs
//   model_checkpoint      write the weights to `filepath` ("{epoch}" is replaced) every epoch, or with
//                         save_best_only only when `monitor` improved
// Their state (best values, counters, the current learning rate, the best weights) is saved in every checkpoint,
// so a resumed run decides exactly as the uninterrupted one.
import Foundation
import LoomConfig
import LoomNN

/// The callbacks of one run and their state.
public final class Callbacks {
    /// One callback's state: the best monitored value so far, epochs without improvement, cooldown left.
    struct State: Codable, Equatable {
        var best: Double?
        var wait = 0
        var cooldown = 0
    }

    let configs: [CallbackConfig]
    var states: [State]
    let trainer: Trainer
    /// Metadata every saved weights file carries (the data's class names and feature scaling).
    var dataMetadata: [String: String] = [:]
    let runConfig: RunConfig
    /// The weights of the best epoch, for early_stopping's restore_best_weights.
    var bestWeights: [Float]?
    /// Set when early stopping decided to stop after the epoch just ended.
    private(set) var stopping = false
    /// Lines to print (a learning-rate change, a stop, a saved file).
    public private(set) var messages: [String] = []

    init(_ config: RunConfig, trainer: Trainer) {
        configs = config.callbacks
        states = configs.map { _ in State() }
        self.trainer = trainer
        runConfig = config
    }

    /// Whether `value` improves on `best` by more than `minDelta` for a metric that `mode` says how to read.
    static func improved(_ value: Double, over best: Double?, minDelta: Double, mode: String, monitor: String) -> Bool {
        guard let best else { return true }
        let higher = mode == "max" || (mode == "auto" && monitor.hasSuffix("accuracy"))
        return higher ? value - minDelta > best : value + minDelta < best
    }

    static func value(_ monitor: String, _ r: EpochRecord) -> Double? {
        switch monitor {
        case "loss": r.loss
        case "accuracy", "mae": r.accuracy
        case "val_loss": r.valLoss
        default: r.valAccuracy
        }
    }

    /// Runs every callback for a complete epoch's record.
    func epochEnded(_ record: EpochRecord) {
        guard record.complete else { return }
        for (i, config) in configs.enumerated() {
            guard let current = Callbacks.value(config.monitor, record) else { continue }
            switch config {
            case .earlyStopping(let monitor, let minDelta, let patience, let mode, let restore):
                if Callbacks.improved(current, over: states[i].best, minDelta: minDelta, mode: mode, monitor: monitor) {
                    states[i].best = current
                    states[i].wait = 0
                    if restore { bestWeights = trainer.model.parameters.array }
                } else {
                    states[i].wait += 1
                    if states[i].wait >= patience && record.epoch > 1 {
                        stopping = true
                        messages.append(
                            "early stopping after epoch \(record.epoch): \(monitor) has not improved for \(states[i].wait) epoch\(states[i].wait == 1 ? "" : "s")"
                        )
                    }
                }
            case .reduceLROnPlateau(
                let monitor, let factor, let patience, let minDelta, let cooldown, let minLR, let mode):
                if states[i].cooldown > 0 {
                    states[i].cooldown -= 1
                    states[i].wait = 0
                }
                if Callbacks.improved(current, over: states[i].best, minDelta: minDelta, mode: mode, monitor: monitor) {
                    states[i].best = current
                    states[i].wait = 0
                } else if states[i].cooldown == 0 {
                    states[i].wait += 1
                    if states[i].wait >= patience {
                        let old = Double(trainer.optimizer.learningRate(step: record.globalStep + 1))
                        if old > minLR {
                            let new = Float(max(old * factor, minLR))
                            trainer.optimizer.baseLearningRate = new
                            messages.append("epoch \(record.epoch): reducing the learning rate to \(new)")
                            states[i].cooldown = cooldown
                            states[i].wait = 0
                        }
                    }
                }
            case .modelCheckpoint(let filepath, let monitor, let best, let mode):
                let better = Callbacks.improved(
                    current, over: states[i].best, minDelta: 0, mode: mode, monitor: monitor)
                if better { states[i].best = current }
                if !best || better {
                    let path = filepath.replacingOccurrences(of: "{epoch}", with: String(record.epoch))
                    do {
                        // Every rank holds the same weights; one writes them.
                        if trainer.communicator.rank == 0 {
                            try Checkpoint.saveWeights(
                                trainer.model, config: runConfig, to: path, extra: dataMetadata)
                        }
                    } catch {
                        messages.append("model_checkpoint: cannot write \(path): \(error.localizedDescription)")
                    }
                }
            }
        }
    }

    /// Asked after the epoch's checkpoint: true ends the run (with the best weights put back, if asked).
    func stopAfterEpoch(_ record: EpochRecord) -> Bool {
        guard stopping else { return false }
        if let best = bestWeights {
            best.withUnsafeBufferPointer {
                trainer.model.parameters.pointer.update(from: $0.baseAddress!, count: $0.count)
            }
            messages.append("restored the weights of the best epoch")
        }
        return true
    }

    // MARK: Checkpoints

    /// The state to save in a checkpoint: metadata, and the best weights as a tensor.
    func checkpointState() -> ([String: String], [NamedTensor]) {
        var meta: [String: String] = [:]
        if let data = try? JSONEncoder().encode(states) { meta["callbacks"] = String(decoding: data, as: UTF8.self) }
        if let lr = trainer.optimizer.baseLearningRate { meta["base_learning_rate"] = String(lr.bitPattern) }
        let tensors =
            bestWeights.map { [NamedTensor(name: "callbacks.best_weights", shape: [$0.count], values: $0)] } ?? []
        return (meta, tensors)
    }

    /// Restores the state a checkpoint saved.
    func restore(metadata: [String: String], tensors: [NamedTensor]) {
        if let text = metadata["callbacks"], let saved = try? JSONDecoder().decode([State].self, from: Data(text.utf8)),
            saved.count == states.count
        {
            states = saved
        }
        if let bits = metadata["base_learning_rate"].flatMap({ UInt32($0) }) {
            trainer.optimizer.baseLearningRate = Float(bitPattern: bits)
        }
        if let t = tensors.first(where: { $0.name == "callbacks.best_weights" }),
            t.values.count == trainer.model.parameterCount
        {
            bestWeights = t.values
        }
    }
}
