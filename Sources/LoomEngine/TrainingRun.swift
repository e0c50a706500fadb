// TrainingRun: everything between a validated config and a trained model — load the data, check it against
// the model, settle the worker count and placement, build the trainer — so the command line stays thin.
import Foundation
import LoomConfig
import LoomData
import LoomNN

/// An error a user can cause, with the exit code the command returns for it.
public enum LoomError: Error, CustomStringConvertible {
    case config(ConfigError)
    case data(DataError)
    case topology(TopologyError)
    case weights(WeightsError)
    case usage(String)
    /// The loss stopped being a number: where, and the first layer whose gradient is not finite.
    case diverged(epoch: Int, step: Int, layer: String)
    /// SIGINT/SIGTERM stopped the run after a whole step.
    case interrupted(signal: Int32, step: Int, checkpoint: String?, resume: String?)

    public var description: String {
        switch self {
        case .config(let e): e.description
        case .data(let e): e.description
        case .topology(let e): e.description
        case .weights(let e): e.description
        case .usage(let s): s
        case .diverged(let epoch, let step, let layer):
            "training diverged at epoch \(epoch), step \(step): the loss is not finite (first non-finite gradient: \(layer)); no checkpoint was written from it — lower optimizer.learning_rate, or set training.on_nan=skip_batch"
        case .interrupted(let signal, let step, let checkpoint, let resume):
            "interrupted by \(signal == SIGTERM ? "SIGTERM" : "SIGINT") after step \(step)"
                + (checkpoint.map {
                    "; checkpoint written to \($0); resume with: \(resume ?? "loom train CONFIG --resume \($0)")"
                } ?? "; no checkpoint (set checkpoint.dir to be able to resume)")
        }
    }

    /// 2 for a bad config or command line, 1 for bad data or files.
    public var exitCode: Int32 {
        switch self {
        case .config, .usage, .topology: 2
        case .data, .weights: 1
        case .diverged: 3
        case .interrupted(let signal, _, _, _): 128 + signal
        }
    }
}

/// What a run does besides training: where it starts from, when it stops, what it writes.
public struct RunOptions: Sendable {
    /// Start from these weights instead of the initializers.
    public var initWeights: String?
    /// Continue from this checkpoint.
    public var resume: String?
    /// End the run after this many optimizer steps (a checkpoint is written if a checkpoint folder is set).
    public var maxSteps: Int?
    /// Write the final weights here.
    public var saveWeights: String?
    /// Write metrics.csv, metrics.jsonl, config.yaml and metrics.svg here.
    public var logDir: String?
    /// Stop cleanly on SIGINT/SIGTERM (the caller installs the handlers); `resumeCommand` is what to print.
    public var stopOnSignal = false
    public var resumeCommand: (@Sendable (String) -> String)?
    public init() {}
}

/// The outcome of a training run.
public struct RunResult: Sendable {
    public var history: [EpochRecord]
    /// Nil when the run stopped early (--max-steps) before finishing its epochs.
    public var test: Evaluation?
    /// Set when --max-steps ended the run; with the checkpoint written then, if any.
    public var stoppedAtStep: Int?
    public var lastCheckpoint: String?
    public var trainSeconds: Double
    public var samplesPerSecond: Double
    public var steps: Int
    public var weightsDigest: String
}

/// A prepared run: config, data, model, workers.
public final class TrainingRun {
    public let config: RunConfig
    public let data: DataSplits
    public let train: Dataset
    public let validation: Dataset?
    public let model: Sequential
    public let topology: Topology
    public let placements: [WorkerPlacement]
    /// Lines the user should see before training (e.g. oversubscription).
    public let warnings: [String]
    public private(set) lazy var trainer = Trainer(
        model: model, optimizer: config.optimizer, placements: placements,
        batchSize: config.training.batchSize, seed: config.training.seed,
        pin: pin)
    private let pin: Bool

    /// Loads the data, checks it against the model and resolves the worker count (`training.workers`, else
    /// one per usable CPU, at most one per batch row).
    public init(config: RunConfig, topology: Topology = .detect(), pin: Bool = true) throws(LoomError) {
        self.config = config
        self.topology = topology
        self.pin = pin
        do { data = try loadDataset(config.data) } catch { throw .data(error) }
        let features = data.train.features
        if let declared = config.inputWidth, declared != features {
            throw .config(
                ConfigError(
                    file: config.source, keyPath: "model.input",
                    message:
                        "the model expects \(declared) inputs but \(data.train.name) samples have \(features) values"))
        }
        let t = config.training
        let holdOut = Int((Double(data.train.count) * t.validationSplit).rounded(.down))
        guard data.train.count - holdOut > 0 else {
            throw .config(
                ConfigError(
                    file: config.source, keyPath: "training.validation_split",
                    message: "leaves no training samples out of \(data.train.count)"))
        }
        train = holdOut > 0 ? data.train.subset(0..<data.train.count - holdOut) : data.train
        validation =
            holdOut > 0 ? data.train.subset(data.train.count - holdOut..<data.train.count, name: "validation") : nil
        // Resource limits: fail before allocating what cannot fit.
        let needed = TrainingRun.memoryNeeded(config, inputWidth: features)
        let available = Int(sysconf(Int32(_SC_PHYS_PAGES))) * Int(sysconf(Int32(_SC_PAGESIZE)))
        if available > 0 && needed > available {
            throw .usage(
                String(
                    format:
                        "the model needs %.1f GiB for its parameters, gradients, optimizer state and batch buffers; this machine has %.1f GiB — use fewer or smaller layers, or a smaller batch",
                    Double(needed) / 1_073_741_824, Double(available) / 1_073_741_824))
        }
        // The loss must be defined for the output (known in full only now that the input width is), and every
        // label must index it: the loss kernels trust both (see `Loss.evaluate`).
        let output = OutputDescription(layers: config.layers.map(\.shape), inputWidth: features)
        if let refusal = config.loss.refusal(for: output) {
            throw .config(ConfigError(file: config.source, keyPath: "loss", message: refusal))
        }
        model = config.makeModel(inputWidth: features)
        try TrainingRun.checkLabels(data, model: model, dataset: config.data.dataset)
        // Workers.
        var warnings: [String] = []
        let usable = topology.usableCPUs.count
        let workers: Int
        if let asked = t.workers {
            guard asked <= t.batchSize else {
                throw .usage(
                    "--workers \(asked) is more than the batch size \(t.batchSize): every worker needs at least one row of each batch; use at most \(t.batchSize) workers or a larger batch"
                )
            }
            workers = asked
            if asked > usable {
                warnings.append(
                    "warning: \(asked) workers on \(usable) usable CPU\(usable == 1 ? "" : "s"): workers share CPUs (oversubscribed), expect lower speed"
                )
            }
        } else {
            workers = max(1, min(usable, t.batchSize))
        }
        placements = topology.placement(workers: workers)
        self.warnings = warnings
        model.initialize(seed: t.seed)
    }

    /// Every label of both splits must lie in `0..<loss.labelLimit(outputs:)`.
    static func checkLabels(_ data: DataSplits, model: Sequential, dataset: String) throws(LoomError) {
        let outputs = model.outputWidth
        let limit = model.loss.labelLimit(outputs: outputs)
        for set in [data.train, data.test] {
            guard let bad = (0..<set.count).first(where: { set.label($0) < 0 || Int(set.label($0)) >= limit }) else {
                continue
            }
            let label = set.label(bad)
            let fix =
                outputs == 1 && !model.loss.isCrossEntropy
                ? "a one-output model reads the label as its target, 0 or 1; give the last layer one unit per class with softmax and sparse_categorical_crossentropy"
                : "set the last layer's units to at least \(label + 1)"
            throw .data(
                .mismatch(
                    dataset,
                    reason:
                        "\(set === data.test ? "test" : "training") sample \(bad) has label \(label), but the model's last layer has \(outputs) output\(outputs == 1 ? "" : "s"); \(fix)"
                ))
        }
    }

    /// Bytes a run allocates for a model: parameters, gradients and optimizer slots, and the batch buffers (each
    /// layer's output and its gradient, for every row of a batch).
    public static func memoryNeeded(_ config: RunConfig, inputWidth: Int) -> Int {
        var width = inputWidth
        var widths = [inputWidth]
        var parameters = 0
        for layer in config.layers {
            if case .dense(let units, _, _, _) = layer {
                parameters += (width + 1) * units
                width = units
            }
            widths.append(width)
        }
        let batch = config.training.batchSize
        return parameters * 4 * (2 + config.optimizer.slotNames.count) + widths.reduce(0, +) * batch * 4 * 2
    }

    /// Trains (from initializers, given weights or a checkpoint), writing checkpoints and metrics as asked,
    /// then evaluates on the test set. Files named in `options` are checked before training starts.
    public func run(_ options: RunOptions = RunOptions(), progress: (TrainingProgress) -> Void = { _ in })
        throws(LoomError) -> RunResult
    {
        let t = config.training
        var control = FitControl()
        control.maxSteps = options.maxSteps
        control.onNaN = t.onNaN
        control.maxSkippedBatches = t.maxSkippedBatches
        control.stopOnSignal = options.stopOnSignal
        if let path = options.initWeights {
            do {
                // A weights file or a checkpoint (whose optimizer state is then not used).
                try Checkpoint.load(SafeTensors.read(path).tensors, into: model, path: path)
            } catch { throw .weights(error) }
        }
        if let path = options.resume {
            do { control.resume = try Checkpoint.restore(trainer, from: path) } catch { throw .weights(error) }
        }
        var lastCheckpoint: String?
        var checkpointError: String?
        if let dir = config.checkpoint.dir {
            do { try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true) } catch {
                throw .usage("cannot create checkpoint folder \(dir): \(error.localizedDescription)")
            }
            // Temporary files of a writer killed mid-write (the real files are only ever renamed into place).
            for f in (try? FileManager.default.contentsOfDirectory(atPath: dir)) ?? []
            where f.hasPrefix(".ckpt-") && f.contains(".tmp-") {
                try? FileManager.default.removeItem(atPath: dir + "/" + f)
            }
            control.checkpointEverySteps = config.checkpoint.everySteps
            let (trainer, config) = (trainer, config)
            let model = model
            control.checkpoint = { point in
                let path = dir + "/" + Checkpoint.fileName(step: point.step)
                // Never write a checkpoint from a non-finite state.
                if Checkpoint.firstNonFinite(model, in: model.parameters) != nil {
                    checkpointError = "not writing checkpoint \(path): the weights are not finite"
                    return
                }
                do {
                    try Checkpoint.save(trainer, config: config, at: point, to: path)
                    Checkpoint.prune(dir, keep: config.checkpoint.keep)
                    lastCheckpoint = path
                } catch {
                    checkpointError = "cannot write checkpoint \(path): \(error.localizedDescription)"
                }
            }
        }
        let metrics = try options.logDir.map { dir throws(LoomError) in
            try MetricsLog(dir: dir, config: config, resuming: options.resume != nil)
        }
        control.epochEnded = { record in
            metrics?.append(record, learningRate: Double("\(self.config.optimizer.learningRate)") ?? 0)
        }
        let history = trainer.fit(
            train, validation: validation, epochs: t.epochs, shuffle: t.shuffle, control: control,
            progress: progress)
        metrics?.finish()
        switch trainer.stopped {
        case .diverged(let epoch, let step):
            throw .diverged(
                epoch: epoch, step: step,
                layer: Checkpoint.firstNonFinite(model, in: model.gradients) ?? "none (only the loss)")
        case .signal(let signal, let point):
            throw .interrupted(
                signal: signal, step: point.step, checkpoint: lastCheckpoint,
                resume: lastCheckpoint.flatMap { options.resumeCommand?($0) })
        default: break
        }
        if let checkpointError { throw .usage(checkpointError) }
        let trainSeconds = history.reduce(0) { $0 + $1.seconds }
        let finished = (history.last?.epoch ?? (control.resume.map { $0.epoch - 1 } ?? 0)) >= t.epochs
        if let path = options.saveWeights {
            do { try Checkpoint.saveWeights(model, config: config, to: path) } catch {
                throw .usage("cannot write weights \(path): \(error.localizedDescription)")
            }
        }
        let samples = history.reduce(0.0) { $0 + $1.samplesPerSecond * $1.seconds }
        return RunResult(
            history: history, test: finished ? trainer.evaluate(data.test) : nil,
            stoppedAtStep: finished ? nil : trainer.step, lastCheckpoint: lastCheckpoint,
            trainSeconds: trainSeconds, samplesPerSecond: trainSeconds > 0 ? samples / trainSeconds : 0,
            steps: history.reduce(0) { $0 + $1.steps }, weightsDigest: model.weightsDigest())
    }
}
