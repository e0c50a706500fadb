// Weights and checkpoints as safetensors files.
//   weights     layers.L.kernel [in, out] (Keras layout), layers.L.bias [out]; __metadata__: format
//               "loom-weights", the resolved config (so the file alone can evaluate or predict), the digest
//   checkpoint  the same tensors, plus optimizer.SLOT [parameters] for every optimizer slot; __metadata__: format
//               "loom-checkpoint", the resolved config, the global step, the epoch and position in it, the
//               shuffling generator's state at that epoch's start, the epoch's running loss sums, the digest
// Every file is written atomically (temporary file in the same folder, fsync, rename, fsync of the folder).
import Foundation
import LoomConfig
import LoomKernels
import LoomNN

/// Checkpoints: the weights, optimizer slots and resume point of a run, written atomically.
public enum Checkpoint {
    /// The model's parameters as named tensors (layer order).
    public static func weightTensors(_ model: Sequential) -> [NamedTensor] {
        model.namedParameters.map { p in
            NamedTensor(
                name: p.name, shape: p.shape,
                values: Array(UnsafeBufferPointer(start: model.parameters.pointer + p.offset, count: p.count)))
        }
    }

    /// Copies named tensors into the model, checking that every parameter is there with its shape.
    public static func load(_ tensors: [NamedTensor], into model: Sequential, path: String) throws(WeightsError) {
        let byName = Dictionary(tensors.map { ($0.name, $0) }, uniquingKeysWith: { a, _ in a })
        for p in model.namedParameters {
            guard let t = byName[p.name] else {
                throw .mismatch(path, "has no tensor '\(p.name)' (the model needs shape \(p.shape))")
            }
            guard t.shape == p.shape else {
                throw .mismatch(path, "tensor '\(p.name)' has shape \(t.shape), the model needs \(p.shape)")
            }
            guard t.values.allSatisfy(\.isFinite) else {
                throw .mismatch(path, "tensor '\(p.name)' holds NaN or infinite values")
            }
            t.values.withUnsafeBufferPointer {
                model.parameters.pointer.advanced(by: p.offset).update(from: $0.baseAddress!, count: p.count)
            }
        }
    }

    /// Writes the final weights of a run, with `extra` metadata (the data's class names and feature scaling).
    public static func saveWeights(
        _ model: Sequential, config: RunConfig, to path: String, extra: [String: String] = [:]
    ) throws {
        var meta = [
            "format": "loom-weights", "config": config.yaml, "input_width": String(model.inputWidth),
            "weights_digest": model.weightsDigest(),
        ]
        meta.merge(extra) { a, _ in a }
        try atomicWrite(SafeTensors.encode(weightTensors(model), metadata: meta), to: path)
    }

    /// Writes a checkpoint of `trainer` at `point`.
    public static func save(
        _ trainer: Trainer, config: RunConfig, at point: ResumePoint, to path: String,
        extra: ([String: String], [NamedTensor]) = ([:], [])
    ) throws {
        var tensors = weightTensors(trainer.model) + extra.1
        for (name, slot) in zip(trainer.optimizer.spec.slotNames, trainer.optimizer.slots) {
            tensors.append(NamedTensor(name: "optimizer.\(name)", shape: [slot.count], values: slot.array))
        }
        let s = point.shuffleState.state
        var meta: [String: String] = [
            "format": "loom-checkpoint", "config": config.yaml, "input_width": String(trainer.model.inputWidth),
            "step": String(point.step), "epoch": String(point.epoch), "position": String(point.position),
            "shuffle_state": "\(s.0),\(s.1),\(s.2),\(s.3)",
            "epoch_loss_sum": String(point.lossSum.bitPattern),
            "epoch_correct_sum": String(point.correctSum.bitPattern),
            "epoch_seen": String(point.seen), "weights_digest": trainer.model.weightsDigest(),
            "learning_rate": "\(trainer.optimizer.learningRate(step: point.step + 1))",
        ]
        meta.merge(extra.0) { a, _ in a }
        try atomicWrite(SafeTensors.encode(tensors, metadata: meta), to: path)
    }

    /// Restores weights and optimizer state from a checkpoint into `trainer` and returns where to continue.
    public static func restore(_ trainer: Trainer, from path: String) throws(WeightsError) -> ResumePoint {
        let (tensors, meta) = try SafeTensors.read(path)
        guard meta["format"] == "loom-checkpoint" else {
            throw .mismatch(
                path,
                "is not a Loom checkpoint (format \(meta["format"] ?? "missing")); --init-weights takes weights files")
        }
        try load(tensors, into: trainer.model, path: path)
        let byName = Dictionary(tensors.map { ($0.name, $0) }, uniquingKeysWith: { a, _ in a })
        for (name, slot) in zip(trainer.optimizer.spec.slotNames, trainer.optimizer.slots) {
            guard let t = byName["optimizer.\(name)"], t.values.count == slot.count else {
                throw .mismatch(
                    path,
                    "lacks the optimizer state 'optimizer.\(name)' of \(slot.count) values (\(trainer.optimizer.spec.name))"
                )
            }
            t.values.withUnsafeBufferPointer { slot.pointer.update(from: $0.baseAddress!, count: slot.count) }
        }
        func int(_ key: String) throws(WeightsError) -> Int {
            guard let v = meta[key].flatMap({ Int($0) }), v >= 0 else {
                throw .corrupt(path, "metadata '\(key)' is missing or not a count")
            }
            return v
        }
        func bits(_ key: String) throws(WeightsError) -> Double {
            guard let v = meta[key].flatMap({ UInt64($0) }) else {
                throw .corrupt(path, "metadata '\(key)' is missing")
            }
            return Double(bitPattern: v)
        }
        let words = (meta["shuffle_state"] ?? "").split(separator: ",").compactMap { UInt64($0) }
        guard words.count == 4 else { throw .corrupt(path, "metadata 'shuffle_state' is missing or malformed") }
        var rng = Random(seed: 0)
        rng.state = (words[0], words[1], words[2], words[3])
        let point = ResumePoint(
            epoch: try int("epoch"), position: try int("position"), shuffleState: rng,
            lossSum: try bits("epoch_loss_sum"), correctSum: try bits("epoch_correct_sum"),
            seen: try int("epoch_seen"), step: try int("step"))
        trainer.resume(at: point)
        return point
    }

    /// The first parameter tensor (layer order) holding a NaN or infinity in `buffer` (the parameters or the
    /// gradients), as "layers.L.kernel (Dense)", or nil when all are finite.
    public static func firstNonFinite(_ model: Sequential, in buffer: AlignedBuffer) -> String? {
        for p in model.namedParameters {
            let values = UnsafeBufferPointer(start: buffer.pointer + p.offset, count: p.count)
            if !values.allSatisfy(\.isFinite) {
                let layer = Int(p.name.split(separator: ".")[1]) ?? 0
                return "\(p.name) (\(model.layers[layer].typeName), \(model.layers[layer].detail))"
            }
        }
        return nil
    }

    /// The checkpoint file name of a global step (sorts by step).
    public static func fileName(step: Int) -> String { String(format: "ckpt-%09d.safetensors", step) }

    /// Deletes all but the newest `keep` checkpoint files of `dir`.
    public static func prune(_ dir: String, keep: Int) {
        let files = ((try? FileManager.default.contentsOfDirectory(atPath: dir)) ?? [])
            .filter { $0.hasPrefix("ckpt-") && $0.hasSuffix(".safetensors") }.sorted()
        for f in files.dropLast(keep) { try? FileManager.default.removeItem(atPath: dir + "/" + f) }
    }
}
