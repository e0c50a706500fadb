// TrainingRun: everything between a validated config and a trained model — load the data, check it against
// the model, settle the worker count and placement, build the trainer — so the command line stays thin.
import Foundation
import LoomConfig
import LoomData
import LoomKernelTypes
import LoomNN

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
    /// The command that resumes the run from a checkpoint path (printed on a stop).
    public var resumeCommand: (@Sendable (String) -> String)?
    /// No initial weights, no resume, no step limit, nothing written.
    public init() {}
}

/// The outcome of a training run. Counts are of what this process ran: a resumed run counts from where it
/// resumed, a `--max-steps` run up to where it stopped.
public struct RunResult: Sendable {
    /// A record per epoch this process ran steps of; the last is partial when the run stopped mid-epoch.
    public var history: [EpochRecord]
    /// Nil when the run stopped early (--max-steps) before finishing its epochs.
    public var test: Evaluation?
    /// Set when --max-steps ended the run; with the checkpoint written then, if any.
    public var stoppedAtStep: Int?
    /// The last checkpoint written, if any.
    public var lastCheckpoint: String?
    /// Seconds spent in training steps (validation and test evaluation excluded).
    public var trainSeconds: Double
    /// Training samples per second.
    public var samplesPerSecond: Double
    /// Optimizer steps run and samples processed by this process.
    public var steps: Int
    /// Samples processed.
    public var samples: Int
    /// Seconds per whole epoch at the measured step rate.
    public var secondsPerEpoch: Double
    /// SHA-256 of the final weights.
    public var weightsDigest: String
    /// Lines the user should see about the run (e.g. a checkpoint with nothing left to train).
    public var notes: [String]
    /// What the callbacks did (a learning-rate change, an early stop).
    public var callbackMessages: [String]
    /// With several ranks: the bytes this rank sent and the seconds it spent exchanging, per step.
    public var communication: Communication?
}

/// A prepared run: config, data, model, workers.
public final class TrainingRun {
    /// The run's config.
    public let config: RunConfig
    /// The loaded data.
    public let data: DataSplits
    /// The training set (without the validation split).
    public let train: Dataset
    /// The validation set, if any.
    public let validation: Dataset?
    /// The network.
    public let model: Sequential
    /// The machine's CPUs and NUMA nodes.
    public let topology: Topology
    /// Where each worker is pinned.
    public let placements: [WorkerPlacement]
    /// Lines the user should see before training (e.g. oversubscription).
    public let warnings: [String]
    /// The trainer (created on first use).
    public private(set) lazy var trainer = Trainer(
        checked: model, optimizer: config.optimizer, placements: placements,
        batchSize: config.training.batchSize, seed: config.training.seed,
        pin: pin, schedule: config.training.schedule, learningRate: config.schedule,
        weightDecay: Float(config.weightDecay), clipping: config.clipping, communicator: communicator)
    private let pin: Bool
    /// What the saved weights must carry about the data: the class names, and the feature standardization that
    /// evaluation and prediction apply again (JSON values).
    public var dataMetadata: [String: String] {
        var meta: [String: String] = [:]
        let encoder = JSONEncoder()
        if let names = data.train.classNames, let json = try? encoder.encode(names) {
            meta["class_names"] = String(decoding: json, as: UTF8.self)
        }
        if let scaling = data.scaling, let json = try? encoder.encode(scaling) {
            meta["feature_scaling"] = String(decoding: json, as: UTF8.self)
        }
        return meta
    }

    /// The processes of this run (one unless started by an MPI launcher); rank 0 writes every file.
    public let communicator: Communicator
    var writes: Bool { communicator.rank == 0 }

    /// Loads the data, checks it against the model and resolves the worker count (`training.workers`, else
    /// one per usable CPU, at most one per batch row).
    public init(
        config: RunConfig, topology: Topology = .detect(), pin: Bool = true, communicator: Communicator = .single
    ) throws(LoomError) {
        self.config = config
        self.topology = topology
        self.pin = pin
        self.communicator = communicator
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
        if data.validation != nil && holdOut > 0 {
            throw .config(
                ConfigError(
                    file: config.source, keyPath: "training.validation_split",
                    message: "given together with a validation file (data.validation_x or data.validation); keep one"))
        }
        let trainingSet = holdOut > 0 ? data.train.subset(0..<data.train.count - holdOut) : data.train
        validation =
            data.validation
            ?? (holdOut > 0
                ? data.train.subset(data.train.count - holdOut..<data.train.count, name: "validation") : nil)
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
        if let refusal = config.loss.refusal(for: output, options: config.lossOptions) {
            throw .config(ConfigError(file: config.source, keyPath: "loss", message: refusal))
        }
        // A process (an MPI rank) whose CPUs lie on one NUMA node backs its large buffers with huge pages (see
        // HugePages).
        let processNodes = topology.nodes.filter { !Set($0.cpus).isDisjoint(with: topology.usableCPUs) }
        HugePages.enabled = processNodes.count == 1
        let model = config.makeModel(inputWidth: features)
        self.model = model
        try TrainingRun.checkLabels(
            [(data.train, "training"), (data.test, "test")] + (data.validation.map { [($0, "validation")] } ?? []),
            model: model, dataset: config.data.dataset)
        if let classWeight = config.training.classWeight {
            train = try TrainingRun.weighingClasses(trainingSet, classWeight, model: model, config: config)
        } else {
            train = trainingSet
        }
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

    /// The training set with each sample's weight multiplied by its class's (Keras' class_weight).
    static func weighingClasses(_ train: Dataset, _ classWeight: ClassWeight, model: Sequential, config: RunConfig)
        throws(LoomError) -> Dataset
    {
        let classes = max(2, model.outputWidth)
        if case .map(let m) = classWeight, let bad = m.keys.sorted().first(where: { $0 >= classes }) {
            throw .config(
                ConfigError(
                    file: config.source, keyPath: "training.class_weight",
                    message: "names class \(bad), but the model has \(classes) classes (0 … \(classes - 1))"))
        }
        let labels = (0..<train.count).map { train.label($0) }
        let perClass = classWeight.weights(labels: labels, classes: classes)
        return train.weighted((0..<train.count).map { train.weight($0) * perClass[Int(labels[$0])] })
    }

    /// Every label of `sets` (named "training", "test", …) must lie in `0..<loss.labelLimit(outputs:)`; real-valued
    /// targets must have one value per output, within what the loss reads (probabilities for cross-entropy).
    static func checkLabels(_ sets: [(Dataset, String)], model: Sequential, dataset: String) throws(LoomError) {
        let outputs = model.outputWidth
        let limit = model.loss.labelLimit(outputs: outputs)
        for (set, name) in sets where set.targetWidth > 0 {
            try checkTargets(set, name, model: model, dataset: dataset)
        }
        for (set, name) in sets where set.targetWidth == 0 {
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
                        "\(name) sample \(bad) has label \(label), but the model's last layer has \(outputs) output\(outputs == 1 ? "" : "s"); \(fix)"
                ))
        }
    }

    /// Real-valued targets: one per output, and for cross-entropy probabilities (binary: in [0, 1]).
    static func checkTargets(_ set: Dataset, _ name: String, model: Sequential, dataset: String) throws(LoomError) {
        let outputs = model.outputWidth
        let loss = model.loss
        guard loss != .sparseCategoricalCrossentropy else {
            throw .data(
                .mismatch(
                    dataset,
                    reason:
                        "\(name) targets are rows of \(set.targetWidth) values, but sparse_categorical_crossentropy takes class indices; use categorical_crossentropy for one-hot or soft targets"
                ))
        }
        guard set.targetWidth == outputs else {
            throw .data(
                .mismatch(
                    dataset,
                    reason:
                        "\(name) targets have \(set.targetWidth) value\(set.targetWidth == 1 ? "" : "s") per sample, but the model's last layer has \(outputs) output\(outputs == 1 ? "" : "s"); set its units to \(set.targetWidth)"
                ))
        }
        guard loss.fusesOutput else { return }
        let upper: Float = loss == .binaryCrossentropy ? 1 : .infinity
        for i in 0..<set.count {
            for j in 0..<outputs where !(set.target(i, j) >= 0 && set.target(i, j) <= upper) {
                throw .data(
                    .mismatch(
                        dataset,
                        reason:
                            "\(name) sample \(i) has the target \(set.target(i, j)), but \(loss.rawValue) reads targets as probabilities (\(upper == 1 ? "in [0, 1]" : "≥ 0")); use a regression loss for other values"
                    ))
            }
        }
    }

    /// Bytes a run allocates for a model: parameters, gradients and optimizer slots, and the batch buffers (each
    /// layer's output and its gradient, for every row of a batch).
    public static func memoryNeeded(_ config: RunConfig, inputWidth: Int) -> Int {
        var width = inputWidth
        var widths = [inputWidth]
        var parameters = 0
        for layer in config.layers {
            if case .dense(let units, _, _, _, _, _) = layer {
                parameters += (width + 1) * units
                width = units
            }
            widths.append(width)
        }
        let batch = config.training.batchSize
        return parameters * 4 * (2 + config.optimizer.slotNames.count) + widths.reduce(0, +) * batch * 4 * 2
    }

    /// Trains (from initializers, given weights or a checkpoint), writing checkpoints and metrics as asked,
    /// then evaluates on the test set. Every output path in `options` and `checkpoint.dir` is checked (and its
    /// folder created) before training starts.
    public func run(_ options: RunOptions = RunOptions(), progress: (TrainingProgress) -> Void = { _ in })
        throws(LoomError) -> RunResult
    {
        try prepareOutputs(options)
        var control = try startingPoint(options)
        let notes = nothingToTrain(control.resume, maxSteps: options.maxSteps)
        let callbacks = try startCallbacks(resume: options.resume)
        let checkpoints = try config.checkpoint.dir.map { dir throws(LoomError) in
            try CheckpointWriter(dir: dir, keep: config.checkpoint.keep, trainer: trainer, config: config)
        }
        let dataMetadata = self.dataMetadata
        checkpoints?.extra = {
            let (meta, tensors) = callbacks?.checkpointState() ?? ([:], [])
            return (meta.merging(dataMetadata) { a, _ in a }, tensors)
        }
        // Several ranks: a rank that a stop signal finds waiting on dead peers says so before the launcher kills it.
        let watch = options.stopOnSignal ? trainer.exchanger?.watch : nil
        watch?.start()
        defer { watch?.stop() }
        if let checkpoints {
            control.checkpointEverySteps = config.checkpoint.everySteps
            control.checkpoint = { point in
                checkpoints.write(point)
                if let watch, let last = checkpoints.last {
                    watch.checkpointWritten(last, command: options.resumeCommand?(last))
                }
            }
        }
        let metrics = try (writes ? options.logDir : nil).map { dir throws(LoomError) in
            try MetricsLog(dir: dir, config: config, resuming: options.resume != nil)
        }
        let optimizer = trainer.optimizer
        control.epochEnded = { record in
            // The rate of the epoch's last step, as printed (0.001, not 0.0010000000474974513).
            let rate = Double("\(optimizer.learningRate(step: max(1, record.globalStep)))") ?? 0
            metrics?.append(record, learningRate: rate)
            callbacks?.epochEnded(record)
        }
        control.stopAfterEpoch = { record in callbacks?.stopAfterEpoch(record) ?? false }
        let history = trainer.fit(
            train, validation: validation, epochs: config.training.epochs, shuffle: config.training.shuffle,
            control: control, progress: progress)
        metrics?.finish()
        try checkStop(checkpoint: checkpoints?.last, options: options)
        if let failure = checkpoints?.failure { throw .output(failure) }
        let finished: Bool
        switch trainer.stopped {
        case nil, .callback: finished = true
        default: finished = false
        }
        trainer.synchronizeState()
        if let path = options.saveWeights, writes { try saveWeights(to: path) }
        let steps = history.reduce(0) { $0 + $1.steps }
        let samples = history.reduce(0) { $0 + $1.samples }
        let seconds = history.reduce(0) { $0 + $1.seconds }
        let stepsPerEpoch = (train.count + config.training.batchSize - 1) / config.training.batchSize
        return RunResult(
            history: history, test: finished && data.test.count > 0 ? trainer.evaluate(data.test) : nil,
            stoppedAtStep: finished ? nil : trainer.step, lastCheckpoint: checkpoints?.last, trainSeconds: seconds,
            samplesPerSecond: seconds > 0 ? Double(samples) / seconds : 0, steps: steps, samples: samples,
            secondsPerEpoch: steps > 0 ? seconds / Double(steps) * Double(stepsPerEpoch) : 0,
            weightsDigest: model.weightsDigest(), notes: notes, callbackMessages: callbacks?.messages ?? [],
            communication: trainer.communication)
    }

    /// The config's callbacks, with their state from the checkpoint being resumed.
    func startCallbacks(resume: String?) throws(LoomError) -> Callbacks? {
        guard !config.callbacks.isEmpty else { return nil }
        let callbacks = Callbacks(config, trainer: trainer)
        callbacks.dataMetadata = dataMetadata
        if let resume {
            do {
                let (tensors, metadata) = try SafeTensors.read(resume)
                callbacks.restore(metadata: metadata, tensors: tensors)
            } catch { throw .weights(error) }
        }
        for case .modelCheckpoint(let path, _, _, _) in config.callbacks {
            try OutputPaths.prepareFile(
                path.replacingOccurrences(of: "{epoch}", with: "1"), option: "callbacks model_checkpoint.filepath")
        }
        return callbacks
    }

    /// Creates missing output folders and checks each output can be written, before any training.
    func prepareOutputs(_ options: RunOptions) throws(LoomError) {
        guard writes else { return }
        if let path = options.saveWeights { try OutputPaths.prepareFile(path, option: "--save-weights") }
        if let dir = options.logDir { try OutputPaths.prepareFolder(dir, option: "--log-dir") }
        if let dir = config.checkpoint.dir { try OutputPaths.prepareFolder(dir, option: "checkpoint.dir") }
    }

    /// Loads the initial weights or the checkpoint to resume, and the stopping rules.
    func startingPoint(_ options: RunOptions) throws(LoomError) -> FitControl {
        var control = FitControl()
        control.maxSteps = options.maxSteps
        control.onNaN = config.training.onNaN
        control.maxSkippedBatches = config.training.maxSkippedBatches
        control.stopOnSignal = options.stopOnSignal
        if let path = options.initWeights {
            do {
                // A weights file or a checkpoint (whose optimizer state is then not used).
                try Checkpoint.load(SafeTensors.read(path).tensors, into: model, path: path)
            } catch { throw .weights(error) }
        }
        if let path = options.resume {
            do { control.resume = try Checkpoint.restore(trainer, from: path) } catch { throw .weights(error) }
            let steps = (train.count + config.training.batchSize - 1) / config.training.batchSize
            if let position = control.resume?.position, position > steps {
                throw .weights(
                    .mismatch(
                        path,
                        "stopped at step \(position) of an epoch, but this run's epochs have \(steps) steps; resume with the data and batch size the checkpoint was written with"
                    ))
            }
        }
        return control
    }

    /// Lines saying why a resumed run has nothing left to train, if it has not.
    func nothingToTrain(_ resume: ResumePoint?, maxSteps: Int?) -> [String] {
        guard let resume else { return [] }
        let epochs = config.training.epochs
        if resume.epoch > epochs {
            let done = resume.epoch - 1
            return [
                "the checkpoint is at step \(resume.step), after epoch \(done), past the \(epochs) epoch\(epochs == 1 ? "" : "s") asked for: nothing to train (raise --epochs above \(done) to continue)"
            ]
        }
        if let maxSteps, maxSteps <= resume.step {
            return [
                "the checkpoint is at step \(resume.step), at or past --max-steps \(maxSteps): nothing to train (raise --max-steps, or drop it to finish the run)"
            ]
        }
        return []
    }

    /// Turns a stop for divergence or a signal into its error.
    func checkStop(checkpoint: String?, options: RunOptions) throws(LoomError) {
        switch trainer.stopped {
        case .diverged(let epoch, let step):
            throw .diverged(
                epoch: epoch, step: step,
                layer: Checkpoint.firstNonFinite(model, in: model.gradients) ?? "none (only the loss)")
        case .signal(let signal, let point):
            throw .interrupted(
                signal: signal, step: point.step, checkpoint: checkpoint,
                resume: checkpoint.flatMap { options.resumeCommand?($0) })
        default: break
        }
    }

    /// Writes the final weights; if `path` fails after all, to a fallback file, and says where.
    func saveWeights(to path: String) throws(LoomError) {
        do {
            try Checkpoint.saveWeights(model, config: config, to: path, extra: dataMetadata)
            return
        } catch {
            let reason = error.localizedDescription
            for fallback in OutputPaths.fallbacks(for: path) {
                if (try? Checkpoint.saveWeights(model, config: config, to: fallback, extra: dataMetadata)) != nil {
                    throw .output("cannot write the weights to \(path) (\(reason)); they were saved to \(fallback)")
                }
            }
            throw .output("cannot write the weights to \(path) (\(reason)), nor to a fallback file")
        }
    }
}

/// Writes the checkpoints a run asks for into one folder, keeping the newest `keep`; remembers the last file
/// written and the first failure (training goes on; the run then ends with that error).
final class CheckpointWriter {
    let dir: String
    let keep: Int
    let trainer: Trainer
    let config: RunConfig
    private(set) var last: String?
    private(set) var failure: String?
    /// More to save in every checkpoint (the callbacks' state).
    var extra: () -> ([String: String], [NamedTensor]) = { ([:], []) }

    init(dir: String, keep: Int, trainer: Trainer, config: RunConfig) throws(LoomError) {
        (self.dir, self.keep, self.trainer, self.config) = (dir, keep, trainer, config)
        // Temporary files of a writer killed mid-write (the real files are only ever renamed into place).
        for f in (try? FileManager.default.contentsOfDirectory(atPath: dir)) ?? []
        where f.hasPrefix(".ckpt-") && f.contains(".tmp-") {
            try? FileManager.default.removeItem(atPath: dir + "/" + f)
        }
    }

    func write(_ point: ResumePoint) {
        let path = dir + "/" + Checkpoint.fileName(step: point.step)
        // Every rank joins in gathering the optimizer state; rank 0 writes it.
        trainer.synchronizeState()
        guard trainer.communicator.rank == 0 else {
            last = path
            return
        }
        // Never write a checkpoint from a non-finite state.
        if Checkpoint.firstNonFinite(trainer.model, in: trainer.model.parameters) != nil {
            failure = failure ?? "not writing checkpoint \(path): the weights are not finite"
            return
        }
        do {
            try Checkpoint.save(trainer, config: config, at: point, to: path, extra: extra())
            Checkpoint.prune(dir, keep: keep)
            last = path
        } catch {
            failure = failure ?? "cannot write checkpoint \(path): \(error.localizedDescription)"
        }
    }
}
