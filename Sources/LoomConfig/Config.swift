// The typed configuration of a run: model, loss, optimizer, data, training. Loaded from YAML (ConfigLoader.swift)
// and printed back as YAML (the resolved config a run records).
import LoomData
import LoomKernels
import LoomNN

/// One layer of the model section.
public enum LayerConfig: Equatable, Sendable {
    /// A fully connected layer with its initializers and optional penalties.
    case dense(
        units: Int, activation: ActivationKind, kernelInitializer: Initializer, biasInitializer: Initializer,
        kernelRegularizer: Regularizer? = nil, biasRegularizer: Regularizer? = nil)
    /// An activation applied as its own layer.
    case activation(ActivationKind)
    /// Dropout of `rate` of the inputs while training.
    case dropout(rate: Double)

    /// The layer as the loss check sees it.
    public var shape: OutputDescription.LayerShape {
        switch self {
        case .dense(let units, let activation, _, _, _, _): .dense(units: units, activation: activation)
        case .activation(let kind): .activation(kind)
        case .dropout: .dropout
        }
    }

    /// The layer object.
    public func makeLayer() -> any Layer {
        switch self {
        case .dense(let units, let activation, let k, let b, let kr, let br):
            Dense(
                units: units, activation: activation, kernelInitializer: k, biasInitializer: b, kernelRegularizer: kr,
                biasRegularizer: br)
        case .activation(let kind): ActivationLayer(kind)
        case .dropout(let rate): Dropout(rate: Float(rate))
        }
    }
}

/// A Keras callback, run at the end of each epoch. `monitor` is `loss`, `accuracy`, `val_loss` or `val_accuracy`
/// (`mae`, `val_mae` for regression); `mode` says whether lower or higher is better (`auto`: higher for accuracy).
public enum CallbackConfig: Equatable, Sendable {
    /// Stop when `monitor` has not improved by `minDelta` for `patience` epochs (Keras' EarlyStopping).
    case earlyStopping(
        monitor: String = "val_loss", minDelta: Double = 0, patience: Int = 0, mode: String = "auto",
        restoreBestWeights: Bool = false)
    /// Multiply the learning rate by `factor` when `monitor` stalls for `patience` epochs (Keras' ReduceLROnPlateau).
    case reduceLROnPlateau(
        monitor: String = "val_loss", factor: Double = 0.1, patience: Int = 10, minDelta: Double = 1e-4,
        cooldown: Int = 0, minLR: Double = 0, mode: String = "auto")
    /// Save the weights at each epoch's end, or only when `monitor` improves (Keras' ModelCheckpoint).
    case modelCheckpoint(
        filepath: String, monitor: String = "val_loss", saveBestOnly: Bool = false, mode: String = "auto")

    /// The callback names a config's `callbacks` section accepts.
    public static let names = ["early_stopping", "reduce_lr_on_plateau", "model_checkpoint", "terminate_on_nan"]
    /// The quantities a callback can monitor.
    public static let monitors = ["loss", "accuracy", "val_loss", "val_accuracy", "mae", "val_mae"]

    /// Why this callback cannot run in a `fit` with (or without) validation data, in one line; nil when it can.
    public func refusal(hasValidation: Bool) -> String? {
        guard CallbackConfig.monitors.contains(monitor) else {
            return "monitor '\(monitor)': expected one of \(CallbackConfig.monitors.joined(separator: ", "))"
        }
        if monitor.hasPrefix("val_") && !hasValidation {
            return
                "\(monitor) needs validation data; pass validationSplit (e.g. 0.1), or monitor \(monitor.dropFirst(4))"
        }
        switch self {
        case .earlyStopping(_, let minDelta, let patience, let mode, _):
            if let why = CallbackConfig.check(mode: mode, minDelta: minDelta, patience: patience) { return why }
        case .reduceLROnPlateau(_, let factor, let patience, let minDelta, let cooldown, let minLR, let mode):
            if let why = CallbackConfig.check(mode: mode, minDelta: minDelta, patience: patience) { return why }
            if !(factor > 0 && factor < 1) { return "factor \(factor): expected a factor in (0, 1)" }
            if cooldown < 0 { return "cooldown \(cooldown): expected a number of epochs ≥ 0" }
            if !(minLR >= 0) { return "minLR \(minLR): expected a learning rate ≥ 0" }
        case .modelCheckpoint(let filepath, _, _, let mode):
            if filepath.isEmpty { return "modelCheckpoint: expected a file path" }
            if let why = CallbackConfig.check(mode: mode, minDelta: 0, patience: 0) { return why }
        }
        return nil
    }

    private static func check(mode: String, minDelta: Double, patience: Int) -> String? {
        if !["auto", "min", "max"].contains(mode) { return "mode '\(mode)': expected auto, min or max" }
        if !(minDelta >= 0) { return "minDelta \(minDelta): expected a change ≥ 0" }
        if patience < 0 { return "patience \(patience): expected a number of epochs ≥ 0" }
        return nil
    }

    /// The quantity this callback watches.
    public var monitor: String {
        switch self {
        case .earlyStopping(let m, _, _, _, _), .reduceLROnPlateau(let m, _, _, _, _, _, _),
            .modelCheckpoint(_, let m, _, _):
            m
        }
    }
}

/// A config's `sweep` section, in `loom tune`'s command-line form: `grid` entries "key=v1,v2", `sample`
/// entries "key=loguniform(a,b)", drawn `samples` times with `sampleSeed`.
public struct SweepConfig: Equatable, Sendable {
    /// Grid entries, "key=v1,v2": every combination is tried.
    public var grid: [String] = []
    /// Sampled entries, "key=loguniform(a,b)" or "key=uniform(a,b)".
    public var sample: [String] = []
    /// How many sampled trials to draw.
    public var samples = 0
    /// The seed of the sampled draws.
    public var sampleSeed = 1
    /// An empty sweep.
    public init() {}
}

/// What to do when a batch's loss is not finite.
public enum NaNPolicy: String, Sendable, CaseIterable {
    /// End the run with exit status 3.
    case stop
    /// Skip the batch's update and go on.
    case skipBatch = "skip_batch"
}

/// How a step's products are cut among workers (LoomEngine's StepPlan): `auto` chooses per product (by batch
/// rows, output columns, a 2-D grid, or fewer workers); `rows` cuts everything by batch rows (the schedule before
/// 0.10); `widest` cuts into as many column blocks as possible (to exercise every tile path). The cut never
/// changes a result, only the speed.
public enum SchedulePolicy: String, Sendable, CaseIterable {
    /// Every product by batch rows.
    case rows
    /// Per product, by the tile model.
    case auto
    /// As many column blocks as possible.
    case widest
}

/// The training section (Keras' `fit` arguments).
public struct TrainingConfig: Equatable, Sendable {
    /// Passes over the training set.
    public var epochs = 5
    /// Samples per optimizer step.
    public var batchSize = 32
    /// Seeds the initial weights, the shuffling and dropout.
    public var seed: UInt64 = 1
    /// Shuffle the training set at the start of each epoch.
    public var shuffle = true
    /// The last fraction of the training set, held out for validation (Keras' validation_split).
    public var validationSplit = 0.0
    /// Worker threads; nil means one per usable CPU.
    public var workers: Int?
    /// What a non-finite loss does: stop the run (exit 3), or skip that batch's update.
    public var onNaN = NaNPolicy.stop
    /// With skip_batch: stop after this many skipped batches in a row.
    public var maxSkippedBatches = 10
    /// How the step's products are cut among workers.
    public var schedule = SchedulePolicy.auto
    /// Keras' class_weight: each training sample's loss weighed by its class's weight (times its own sample
    /// weight, if any); validation and test losses are not.
    public var classWeight: ClassWeight?
    /// Keras' defaults (5 epochs, batch 32, seed 1, shuffled).
    public init() {}
}

/// Per-class loss weights.
public enum ClassWeight: Equatable, Sendable {
    /// scikit-learn's: n_samples / (n_classes × the class's count), over the training split.
    case balanced
    /// Class index → weight; a class not named weighs 1.
    case map([Int: Double])

    /// One weight per class for a training set of these labels.
    public func weights(labels: [Int32], classes: Int) -> [Float] {
        switch self {
        case .map(let m): return (0..<classes).map { Float(m[$0] ?? 1) }
        case .balanced:
            var counts = [Int](repeating: 0, count: classes)
            for l in labels { counts[Int(l)] += 1 }
            let present = counts.filter { $0 > 0 }.count
            return counts.map { $0 > 0 ? Float(Double(labels.count) / Double(present * $0)) : 1 }
        }
    }
}

/// Where and how often a run saves checkpoints.
public struct CheckpointConfig: Equatable, Sendable {
    /// The folder; nil: no checkpoints.
    public var dir: String?
    /// Also every this many optimizer steps (0: only at each epoch's end).
    public var everySteps = 0
    /// How many of the newest checkpoint files to keep.
    public var keep = 3
    /// No checkpoints.
    public init() {}
}

/// A whole run's configuration.
public struct RunConfig: Equatable, Sendable {
    /// The model's layers, in order.
    public var layers: [LayerConfig]
    /// Features per sample, when the config states it (checked against the data).
    public var inputWidth: Int?
    /// The training objective.
    public var loss: Loss
    /// from_logits, Huber's delta.
    public var lossOptions = LossOptions()
    /// The optimizer and its hyperparameters.
    public var optimizer: OptimizerSpec
    /// Where the samples come from.
    public var data: DataSource
    /// Keras' `fit` arguments.
    public var training: TrainingConfig
    /// Where and how often checkpoints are written.
    public var checkpoint = CheckpointConfig()
    /// How the learning rate changes with the step (`optimizer.schedule`).
    public var schedule = LearningRateSchedule.constant
    /// Keras callbacks, in the order given.
    public var callbacks: [CallbackConfig] = []
    /// The sweep `loom tune` runs (the `sweep` section; a plain training run ignores it).
    public var sweep = SweepConfig()
    /// Decoupled weight decay (`optimizer.weight_decay`; adamw's default 0.004; 0: none) and gradient clipping
    /// (`optimizer.clipvalue`, `clipnorm` or `global_clipnorm`).
    public var weightDecay = 0.0
    /// Gradient clipping (`clipvalue`, `clipnorm`, `global_clipnorm`).
    public var clipping = GradientClipping.none
    /// The file it came from, for messages.
    public var source: String

    /// A config from its sections (the rest take their defaults).
    public init(
        layers: [LayerConfig], inputWidth: Int?, loss: Loss, optimizer: OptimizerSpec, data: DataSource,
        training: TrainingConfig, source: String
    ) {
        self.layers = layers
        self.inputWidth = inputWidth
        self.loss = loss
        self.optimizer = optimizer
        self.data = data
        self.training = training
        self.source = source
    }

    /// What is reported beside the loss: accuracy, or the mean absolute error for a regression loss on
    /// real-valued targets.
    public var metric: Metric { loss.metric(valueTargets: data.valueTargets) }

    /// The model this config describes, for inputs of `inputWidth` features.
    public func makeModel(inputWidth: Int) -> Sequential {
        Sequential(inputWidth: inputWidth, layers: layers.map { $0.makeLayer() }, loss: loss, lossOptions: lossOptions)
    }

    /// The resolved configuration as YAML (every default spelled out), loadable by `ConfigLoader`.
    public var yaml: String {
        var out = "model:\n"
        if let inputWidth { out += "  input: \(inputWidth)\n" }
        out += "  layers:\n"
        for layer in layers {
            switch layer {
            case .dense(let units, let act, let k, let b, let kr, let br):
                out += "    - type: dense\n      units: \(units)\n      activation: \(act.rawValue)\n"
                out +=
                    "      kernel_initializer: \(yamlInitializer(k))\n      bias_initializer: \(yamlInitializer(b))\n"
                if let kr { out += "      kernel_regularizer: {l1: \(kr.l1), l2: \(kr.l2)}\n" }
                if let br { out += "      bias_regularizer: {l1: \(br.l1), l2: \(br.l2)}\n" }
            case .activation(let kind): out += "    - type: activation\n      activation: \(kind.rawValue)\n"
            case .dropout(let rate): out += "    - type: dropout\n      rate: \(rate)\n"
            }
        }
        if lossOptions == LossOptions() {
            out += "loss: \(loss.rawValue)\n"
        } else {
            out += "loss: {name: \(loss.rawValue)"
            if lossOptions.fromLogits { out += ", from_logits: true" }
            if loss == .huber { out += ", delta: \(lossOptions.delta)" }
            out += "}\n"
        }
        out += "optimizer:\n  name: \(optimizer.name)\n"
        switch optimizer {
        case .sgd(let lr, let m, let n):
            out += "  learning_rate: \(lr)\n  momentum: \(m)\n  nesterov: \(n)\n"
        case .rmsprop(let lr, let rho, let eps, let m, let c):
            out += "  learning_rate: \(lr)\n  rho: \(rho)\n  epsilon: \(eps)\n  momentum: \(m)\n  centered: \(c)\n"
        case .adam(let lr, let b1, let b2, let eps), .adamw(let lr, let b1, let b2, let eps):
            out += "  learning_rate: \(lr)\n  beta_1: \(b1)\n  beta_2: \(b2)\n  epsilon: \(eps)\n"
        }
        if schedule != .constant { out += "  schedule: \(yamlSchedule(schedule))\n" }
        if weightDecay != 0 || optimizer.name == "adamw" { out += "  weight_decay: \(weightDecay)\n" }
        switch clipping {
        case .none: break
        case .value(let c): out += "  clipvalue: \(c)\n"
        case .norm(let c): out += "  clipnorm: \(c)\n"
        case .globalNorm(let c): out += "  global_clipnorm: \(c)\n"
        }
        out += "data:\n  dataset: \(data.dataset)\n"
        let csv = data.dataset == "csv"
        for (key, value) in [
            ("path", data.path), (csv ? "train" : "train_images", data.trainImages), ("train_labels", data.trainLabels),
            (csv ? "test" : "test_images", data.testImages), ("test_labels", data.testLabels),
        ] {
            if let value { out += "  \(key): \"\(value)\"\n" }
        }
        if let scale = data.scale { out += "  scale: \(scale)\n" }
        if data.standardize { out += "  standardize: true\n" }
        if let kind = data.targetsKind { out += "  targets: \(kind)\n" }
        if let v = data.validationX { out += "  \(csv ? "validation" : "validation_x"): \"\(v)\"\n" }
        if let v = data.validationY { out += "  validation_y: \"\(v)\"\n" }
        if csv {
            let c = data.csv
            if let split = data.testSplit { out += "  test_split: \(split)\n" }
            out +=
                c.targets.count == 1
                ? "  target: \"\(c.target)\"\n"
                : "  target: [\(c.targets.map { "\"\($0)\"" }.joined(separator: ", "))]\n"
            if let w = c.weight { out += "  sample_weight: \"\(w)\"\n" }
            if let f = c.features { out += "  features: [\(f.map { "\"\($0)\"" }.joined(separator: ", "))]\n" }
            if let h = c.header { out += "  header: \(h)\n" }
            if c.skipRows > 0 { out += "  skip_rows: \(c.skipRows)\n" }
            if let d = c.delimiter { out += "  delimiter: \"\(d == 9 ? "tab" : String(UnicodeScalar(d)))\"\n" }
        }
        out += "training:\n  epochs: \(training.epochs)\n  batch_size: \(training.batchSize)\n"
        out += "  seed: \(training.seed)\n  shuffle: \(training.shuffle)\n"
        out += "  validation_split: \(training.validationSplit)\n"
        out += "  workers: \(training.workers.map(String.init) ?? "auto")\n"
        out += "  on_nan: \(training.onNaN.rawValue)\n  max_skipped_batches: \(training.maxSkippedBatches)\n"
        out += "  schedule: \(training.schedule.rawValue)\n"
        switch training.classWeight {
        case nil: break
        case .balanced: out += "  class_weight: balanced\n"
        case .map(let m):
            out += "  class_weight: {\(m.keys.sorted().map { "\($0): \(m[$0]!)" }.joined(separator: ", "))}\n"
        }
        if !callbacks.isEmpty {
            out += "callbacks:\n"
            for c in callbacks {
                switch c {
                case .earlyStopping(let m, let d, let p, let mode, let r):
                    out +=
                        "  - {name: early_stopping, monitor: \(m), min_delta: \(d), patience: \(p), mode: \(mode), restore_best_weights: \(r)}\n"
                case .reduceLROnPlateau(let m, let f, let p, let d, let c, let lr, let mode):
                    out +=
                        "  - {name: reduce_lr_on_plateau, monitor: \(m), factor: \(f), patience: \(p), min_delta: \(d), cooldown: \(c), min_lr: \(lr), mode: \(mode)}\n"
                case .modelCheckpoint(let path, let m, let best, let mode):
                    out +=
                        "  - {name: model_checkpoint, filepath: \"\(path)\", monitor: \(m), save_best_only: \(best), mode: \(mode)}\n"
                }
            }
        }
        if let dir = checkpoint.dir {
            out +=
                "checkpoint:\n  dir: \"\(dir)\"\n  every_steps: \(checkpoint.everySteps)\n  keep: \(checkpoint.keep)\n"
        }
        return out
    }
}

func yamlInitializer(_ i: Initializer) -> String {
    switch i {
    case .randomNormal(let m, let s): "{name: random_normal, mean: \(m), stddev: \(s)}"
    case .randomUniform(let lo, let hi): "{name: random_uniform, min: \(lo), max: \(hi)}"
    default: i.description
    }
}

func yamlSchedule(_ s: LearningRateSchedule) -> String {
    switch s {
    case .constant: "constant"
    case .exponentialDecay(let steps, let rate, let staircase), .inverseTimeDecay(let steps, let rate, let staircase):
        "{name: \(s.name), decay_steps: \(steps), decay_rate: \(rate), staircase: \(staircase)}"
    case .polynomialDecay(let steps, let end, let power, let cycle):
        "{name: polynomial_decay, decay_steps: \(steps), end_learning_rate: \(end), power: \(power), cycle: \(cycle)}"
    case .cosineDecay(let steps, let alpha, let warmup, let target):
        "{name: cosine_decay, decay_steps: \(steps), alpha: \(alpha), warmup_steps: \(warmup)"
            + (target.map { ", warmup_target: \($0)" } ?? "") + "}"
    case .piecewiseConstant(let boundaries, let values):
        "{name: piecewise_constant, boundaries: \(boundaries), values: \(values)}"
    }
}
