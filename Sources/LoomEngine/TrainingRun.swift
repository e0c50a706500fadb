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
    case usage(String)

    public var description: String {
        switch self {
        case .config(let e): e.description
        case .data(let e): e.description
        case .topology(let e): e.description
        case .usage(let s): s
        }
    }

    /// 2 for a bad config or command line, 1 for bad data or files.
    public var exitCode: Int32 {
        switch self {
        case .config, .usage, .topology: 2
        case .data: 1
        }
    }
}

/// The outcome of a training run.
public struct RunResult: Sendable {
    public var history: [EpochRecord]
    public var test: Evaluation
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
    public private(set) lazy var trainer = Trainer(model: model, optimizer: config.optimizer, placements: placements,
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
            throw .config(ConfigError(file: config.source, keyPath: "model.input",
                                      message: "the model expects \(declared) inputs but \(data.train.name) samples have \(features) values"))
        }
        let t = config.training
        let holdOut = Int((Double(data.train.count) * t.validationSplit).rounded(.down))
        guard data.train.count - holdOut > 0 else {
            throw .config(ConfigError(file: config.source, keyPath: "training.validation_split",
                                      message: "leaves no training samples out of \(data.train.count)"))
        }
        train = holdOut > 0 ? data.train.subset(0..<data.train.count - holdOut) : data.train
        validation = holdOut > 0 ? data.train.subset(data.train.count - holdOut..<data.train.count, name: "validation") : nil
        model = config.makeModel(inputWidth: features)
        // Labels must fit the model's outputs.
        let outputs = model.outputWidth
        let (trainSet, testSet) = (data.train, data.test)
        let maxLabel = (0..<trainSet.count).lazy.map { Int(trainSet.label($0)) }.max() ?? 0
        let maxTest = (0..<testSet.count).lazy.map { Int(testSet.label($0)) }.max() ?? 0
        let limit = outputs == 1 ? 2 : outputs
        if max(maxLabel, maxTest) >= limit {
            throw .data(.mismatch(config.data.dataset, reason: "labels go up to \(max(maxLabel, maxTest)) but the model's last layer has \(outputs) output\(outputs == 1 ? "" : "s"); set its units to at least \(max(maxLabel, maxTest) + 1)"))
        }
        // Workers.
        var warnings: [String] = []
        let usable = topology.usableCPUs.count
        let workers: Int
        if let asked = t.workers {
            guard asked <= t.batchSize else {
                throw .usage("--workers \(asked) is more than the batch size \(t.batchSize): every worker needs at least one row of each batch; use at most \(t.batchSize) workers or a larger batch")
            }
            workers = asked
            if asked > usable {
                warnings.append("warning: \(asked) workers on \(usable) usable CPU\(usable == 1 ? "" : "s"): workers share CPUs (oversubscribed), expect lower speed")
            }
        } else {
            workers = max(1, min(usable, t.batchSize))
        }
        placements = topology.placement(workers: workers)
        self.warnings = warnings
        model.initialize(seed: t.seed)
    }

    /// Trains, then evaluates on the test set.
    public func run(progress: (TrainingProgress) -> Void = { _ in }) -> RunResult {
        let t = config.training
        let history = trainer.fit(train, validation: validation, epochs: t.epochs, shuffle: t.shuffle, progress: progress)
        let trainSeconds = history.reduce(0) { $0 + $1.seconds }
        let test = trainer.evaluate(data.test)
        return RunResult(history: history, test: test, trainSeconds: trainSeconds,
                         samplesPerSecond: Double(train.count * history.count) / trainSeconds,
                         steps: history.reduce(0) { $0 + $1.steps }, weightsDigest: model.weightsDigest())
    }
}
