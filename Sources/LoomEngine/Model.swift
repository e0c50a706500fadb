// Model: Loom from Swift, the way Keras is used from Python — build, fit on arrays or a data set, evaluate,
// predict, save. It checks what a user can get wrong (shapes, labels, the loss for the output, worker counts)
// and throws the same one-line errors as the command line, then drives the same Trainer the CLI does.
//
//     let model = try Model(inputWidth: 784, layers: [Dense(units: 512, activation: .relu),
//                                                     Dense(units: 10, activation: .softmax)],
//                           loss: .sparseCategoricalCrossentropy, optimizer: .rmsprop())
//     try model.fit(data.train, epochs: 5, batchSize: 128)
//     print(try model.evaluate(data.test).accuracy)
import Foundation
import LoomConfig
import LoomData
import LoomNN

/// A Keras-style model: a `Sequential` network with its loss and optimizer, trained data-parallel on worker
/// threads. The optimizer's state carries over from one `fit` to the next, as in Keras.
public final class Model {
    /// The network: layers, flat parameters and loss.
    public let network: Sequential
    /// The optimizer `fit` uses.
    public let optimizer: OptimizerSpec
    /// The seed of the initial weights, shuffling and dropout.
    public let seed: UInt64
    /// The trainer of the last `fit` (its batch size and workers), kept for the next one.
    private var trainer: Trainer?

    /// Builds and initializes the network (Keras' initializers, seeded); throws if `loss` is not defined for
    /// the last layer's output (e.g. cross-entropy after a linear layer).
    public convenience init(
        inputWidth: Int, layers: [any Layer], loss: Loss, lossOptions: LossOptions = LossOptions(),
        optimizer: OptimizerSpec = .rmsprop(), seed: UInt64 = 1
    ) throws(LoomError) {
        try self.init(
            inputWidth: inputWidth, layers: layers, loss: loss, lossOptions: lossOptions, customLoss: nil,
            optimizer: optimizer, seed: seed)
    }

    /// A model trained on a loss of your own (LoomTape's `CustomLoss`, written with tensor operations). Targets
    /// are class indices or real values, as for mean_squared_error, and so are the metrics.
    public convenience init(
        inputWidth: Int, layers: [any Layer], loss: any RowLoss, optimizer: OptimizerSpec = .rmsprop(),
        seed: UInt64 = 1
    ) throws(LoomError) {
        try self.init(
            inputWidth: inputWidth, layers: layers, loss: .meanSquaredError, lossOptions: LossOptions(),
            customLoss: loss, optimizer: optimizer, seed: seed)
    }

    /// Keras' `load_model`: the network, loss, optimizer settings and weights that `save(to:)` (or `loom train
    /// --save-weights`) wrote. Training continues from the weights with a fresh optimizer state. A model trained
    /// on a custom loss needs it again as `loss` (the file names it, but cannot hold its code).
    public static func load(from path: String, loss: (any RowLoss)? = nil) throws(LoomError) -> Model {
        let saved = try SavedModel(path: path)
        if let customLayers = saved.customLayers {
            throw .usage(
                "\(path) holds custom layers (\(customLayers)); give their code: Model.load(from:layers:) { … }")
        }
        if loss == nil && saved.customLoss == nil {
            return Model(
                network: try saved.makeModel(), optimizer: saved.config.optimizer, seed: saved.config.training.seed)
        }
        return try restore(saved, layers: saved.config.layers.map { $0.makeLayer() }, loss: loss)
    }

    /// Loads the weights at `path` into a model of the layers written in the block — for a model with custom
    /// layers, whose code the file cannot hold (Keras' `custom_objects`). Every parameter of the model must find
    /// a saved tensor of its name (`layers.1.gamma`) and shape. A model trained on a custom loss needs it again
    /// as `loss`.
    public static func load(
        from path: String, loss: (any RowLoss)? = nil, @LayerBuilder layers: () -> [any Layer]
    ) throws(LoomError) -> Model {
        try restore(SavedModel(path: path), layers: layers(), loss: loss)
    }

    /// A model of `layers` and the saved (or the given) loss, holding the saved weights.
    private static func restore(_ saved: SavedModel, layers: [any Layer], loss: (any RowLoss)?) throws(LoomError)
        -> Model
    {
        if let name = saved.customLoss, loss == nil {
            throw .usage("\(saved.path) was trained on the custom loss \(name); give it again: Model.load(from:loss:)")
        }
        let model =
            if let loss {
                try Model(
                    inputWidth: saved.inputWidth, layers: layers, loss: loss, optimizer: saved.config.optimizer,
                    seed: saved.config.training.seed)
            } else {
                try Model(
                    inputWidth: saved.inputWidth, layers: layers, loss: saved.config.loss,
                    lossOptions: saved.config.lossOptions, optimizer: saved.config.optimizer,
                    seed: saved.config.training.seed)
            }
        do { try Checkpoint.load(saved.tensors, into: model.network, path: saved.path) } catch {
            throw .weights(error)
        }
        return model
    }

    private init(network: Sequential, optimizer: OptimizerSpec, seed: UInt64) {
        self.network = network
        self.optimizer = optimizer
        self.seed = seed
    }

    /// A model of the layers written in the trailing block (see `LayerBuilder`):
    ///
    ///     let model = try Model(inputWidth: 784, loss: .sparseCategoricalCrossentropy) {
    ///         Dense(units: 512, activation: .relu)
    ///         Dense(units: 10, activation: .softmax)
    ///     }
    public convenience init(
        inputWidth: Int, loss: Loss, lossOptions: LossOptions = LossOptions(), optimizer: OptimizerSpec = .rmsprop(),
        seed: UInt64 = 1, @LayerBuilder layers: () -> [any Layer]
    ) throws(LoomError) {
        try self.init(
            inputWidth: inputWidth, layers: layers(), loss: loss, lossOptions: lossOptions, optimizer: optimizer,
            seed: seed)
    }

    /// A model of the layers written in the trailing block, trained on a loss of your own.
    public convenience init(
        inputWidth: Int, loss: any RowLoss, optimizer: OptimizerSpec = .rmsprop(), seed: UInt64 = 1,
        @LayerBuilder layers: () -> [any Layer]
    ) throws(LoomError) {
        try self.init(inputWidth: inputWidth, layers: layers(), loss: loss, optimizer: optimizer, seed: seed)
    }

    private init(
        inputWidth: Int, layers: [any Layer], loss: Loss, lossOptions: LossOptions, customLoss: (any RowLoss)?,
        optimizer: OptimizerSpec, seed: UInt64
    ) throws(LoomError) {
        guard inputWidth > 0 else { throw .usage("inputWidth \(inputWidth): a model needs at least one input") }
        guard !layers.isEmpty else { throw .usage("a model needs at least one layer") }
        var width = inputWidth
        var shapes: [OutputDescription.LayerShape] = []
        for (l, layer) in layers.enumerated() {
            layer.build(inputWidth: width)
            if let refusal = layer.refusal() { throw .usage("layer \(l): \(refusal)") }
            shapes.append(layer.shape)
            width = layer.outputWidth
        }
        let output = OutputDescription(layers: shapes, inputWidth: inputWidth)
        if let customLoss {
            if let refusal = customLoss.refusal(outputWidth: width) {
                throw .usage("loss \(customLoss.name): \(refusal)")
            }
        } else if let refusal = loss.refusal(for: output, options: lossOptions) {
            throw .usage("loss \(loss.rawValue): \(refusal)")
        }
        network = Sequential(
            inputWidth: inputWidth, layers: layers, loss: loss, lossOptions: lossOptions, customLoss: customLoss)
        network.initialize(seed: seed)
        self.optimizer = optimizer
        self.seed = seed
    }

    /// Keras' `fit` on arrays: `x` holds one row of `inputWidth` values per sample, `y` its class. Each sample's
    /// loss is weighed by `sampleWeight` (one weight per row) and by its class's `classWeight` (a class not named
    /// weighs 1), both as in Keras.
    @discardableResult
    public func fit(
        x: [[Float]], y: [Int], epochs: Int, batchSize: Int = 32, validationSplit: Double = 0,
        sampleWeight: [Float]? = nil, classWeight: [Int: Double]? = nil, callbacks: [CallbackConfig] = [],
        workers: Int? = nil, progress: (TrainingProgress) -> Void = { _ in }
    ) throws(LoomError) -> [EpochRecord] {
        var data = try weighted(dataset(x: x, y: y), sampleWeight)
        if let classWeight {
            let classes = max(2, network.outputWidth)
            if let bad = classWeight.keys.sorted().first(where: { $0 < 0 || $0 >= classes }) {
                throw .usage(
                    "classWeight names class \(bad), but the model has \(classes) classes (0 … \(classes - 1))")
            }
            if let bad = classWeight.first(where: { !($0.value >= 0 && $0.value.isFinite) }) {
                throw .usage("classWeight[\(bad.key)] = \(bad.value): weights must be finite and 0 or more")
            }
            let perClass = ClassWeight.map(classWeight).weights(labels: y.map { Int32($0) }, classes: classes)
            data = data.weighted((0..<data.count).map { data.weight($0) * perClass[y[$0]] })
        }
        return try fit(
            data, epochs: epochs, batchSize: batchSize, validationSplit: validationSplit, callbacks: callbacks,
            workers: workers, progress: progress)
    }

    /// Keras' `fit` on real-valued targets: `y` holds one row of `outputWidth` values per sample — regression
    /// targets (mean_squared_error, mean_absolute_error, huber), or one-hot / soft class probabilities
    /// (categorical_crossentropy, binary_crossentropy). `sampleWeight` weighs each sample's loss.
    @discardableResult
    public func fit(
        x: [[Float]], y: [[Float]], epochs: Int, batchSize: Int = 32, validationSplit: Double = 0,
        sampleWeight: [Float]? = nil, callbacks: [CallbackConfig] = [], workers: Int? = nil,
        progress: (TrainingProgress) -> Void = { _ in }
    ) throws(LoomError) -> [EpochRecord] {
        try fit(
            weighted(dataset(x: x, targets: y), sampleWeight), epochs: epochs, batchSize: batchSize,
            validationSplit: validationSplit, callbacks: callbacks, workers: workers, progress: progress)
    }

    /// Keras' `fit` on a data set: `epochs` passes in shuffled batches of `batchSize` on `workers` threads
    /// (default: one per usable CPU), holding out the last `validationSplit` of the samples, with Keras'
    /// `callbacks` run at each epoch's end (what they did is in `callbackMessages`). Returns a record per epoch;
    /// early stopping ends the list at the epoch it stopped after.
    @discardableResult
    public func fit(
        _ data: Dataset, epochs: Int, batchSize: Int = 32, validationSplit: Double = 0,
        callbacks: [CallbackConfig] = [], workers: Int? = nil, progress: (TrainingProgress) -> Void = { _ in }
    ) throws(LoomError) -> [EpochRecord] {
        guard epochs >= 1 else { throw .usage("epochs \(epochs): train for at least one epoch") }
        guard batchSize >= 1 else { throw .usage("batchSize \(batchSize): a batch needs at least one sample") }
        guard validationSplit >= 0 && validationSplit < 1 else {
            throw .usage("validationSplit \(validationSplit): expected a fraction in [0, 1)")
        }
        try check(data, "training")
        let held = Int((Double(data.count) * validationSplit).rounded(.down))
        guard data.count - held > 0 else {
            throw .usage("validationSplit \(validationSplit) leaves no training samples")
        }
        let train = held > 0 ? data.subset(0..<data.count - held) : data
        let validation = held > 0 ? data.subset(data.count - held..<data.count, name: "validation") : nil
        for (i, callback) in callbacks.enumerated() {
            if let refusal = callback.refusal(hasValidation: validation != nil) {
                throw .usage("callbacks[\(i)]: \(refusal)")
            }
        }
        for case .modelCheckpoint(let path, _, _, _) in callbacks {
            try OutputPaths.prepareFile(path.replacingOccurrences(of: "{epoch}", with: "1"), option: "modelCheckpoint")
        }
        let trainer = try self.trainer(batchSize: batchSize, workers: workers)
        var config = describingConfig(source: "Model.fit")
        config.callbacks = callbacks
        let runner = Callbacks(config, trainer: trainer)
        var control = FitControl()
        control.epochEnded = { runner.epochEnded($0) }
        control.stopAfterEpoch = { runner.stopAfterEpoch($0) }
        let records = trainer.fit(train, validation: validation, epochs: epochs, control: control, progress: progress)
        callbackMessages = runner.messages
        return records
    }

    /// What the callbacks of the last `fit` did, one line each (a learning-rate change, an early stop, a saved
    /// file).
    public private(set) var callbackMessages: [String] = []

    /// Keras' `evaluate`: loss, accuracy and confusion matrix over `data` (no dropout).
    public func evaluate(_ data: Dataset, workers: Int? = nil) throws(LoomError) -> Evaluation {
        try check(data, "evaluation")
        return try trainer(batchSize: trainer?.batchSize ?? 256, workers: workers).evaluate(data)
    }

    /// Keras' `evaluate` on arrays.
    public func evaluate(x: [[Float]], y: [Int], workers: Int? = nil) throws(LoomError) -> Evaluation {
        try evaluate(dataset(x: x, y: y), workers: workers)
    }

    /// Keras' `evaluate` on real-valued targets: the loss, and for regression the mean absolute and root mean
    /// squared errors.
    public func evaluate(x: [[Float]], y: [[Float]], workers: Int? = nil) throws(LoomError) -> Evaluation {
        try evaluate(dataset(x: x, targets: y), workers: workers)
    }

    /// Keras' `predict`: the outputs (class probabilities after a softmax) for each row of `x`.
    public func predict(_ x: [[Float]], workers: Int? = nil) throws(LoomError) -> [[Float]] {
        let data = try dataset(x: x, y: [Int](repeating: 0, count: x.count), checkLabels: false)
        let flat = try trainer(batchSize: trainer?.batchSize ?? 256, workers: workers).predict(data)
        let c = network.outputWidth
        return (0..<x.count).map { Array(flat[$0 * c..<($0 + 1) * c]) }
    }

    /// The weights as a safetensors file (what `loom train --save-weights` writes), with a config that
    /// describes the network so `loom evaluate` and `loom predict` can read it.
    public func save(to path: String) throws(LoomError) {
        try OutputPaths.prepareFile(path, option: "save(to:)")
        // A custom layer's code cannot go in the file: it is named, and Model.load(from:layers:) reads it back.
        let custom = network.layers.enumerated().filter { !isBuiltIn($0.element) }
        var extra: [String: String] = [:]
        if !custom.isEmpty {
            extra["custom_layers"] = custom.map { "\($0.offset): \($0.element.typeName)" }.joined(separator: ", ")
        }
        if let loss = network.customLoss { extra["custom_loss"] = loss.name }
        do { try Checkpoint.saveWeights(network, config: describingConfig(source: path), to: path, extra: extra) } catch
        {
            throw .output("cannot write the weights to \(path): \(error.localizedDescription)")
        }
    }

    /// Whether the config can describe `layer`.
    private func isBuiltIn(_ layer: any Layer) -> Bool {
        layer is Dense || layer is ActivationLayer || layer is Dropout
    }

    /// A run config that describes this network, its loss and optimizer (what a weights file records; a custom
    /// layer stands there as a linear activation, and the file names it).
    func describingConfig(source: String) -> RunConfig {
        let layers: [LayerConfig] = network.layers.map { layer in
            switch layer {
            case let d as Dense:
                .dense(
                    units: d.units, activation: d.activation, kernelInitializer: d.kernelInitializer,
                    biasInitializer: d.biasInitializer, kernelRegularizer: d.kernelRegularizer,
                    biasRegularizer: d.biasRegularizer)
            case let a as ActivationLayer: .activation(a.kind)
            case let d as Dropout: .dropout(rate: Double(d.rate))
            default: .activation(.linear)
            }
        }
        var config = RunConfig(
            layers: layers, inputWidth: network.inputWidth, loss: network.loss, optimizer: optimizer,
            data: DataSource(dataset: "arrays"), training: TrainingConfig(), source: source)
        config.lossOptions = network.lossOptions
        return config
    }

    /// Optimizer steps taken so far, over every `fit`.
    public var trainerStep: Int { trainer?.step ?? 0 }

    /// Keras' `summary`.
    public func summary() -> String { network.summary() }

    // MARK: Checks and plumbing

    /// The trainer for this batch size and worker count; a new one carries the optimizer state over.
    func trainer(batchSize: Int, workers: Int?) throws(LoomError) -> Trainer {
        let topology = Topology.detect()
        let n = workers ?? max(1, min(topology.usableCPUs.count, batchSize))
        guard n >= 1 else { throw .usage("workers \(n): at least one worker is needed") }
        guard n <= batchSize else {
            throw .usage(
                "workers \(n) is more than the batch size \(batchSize): every worker needs a row of each batch")
        }
        if let trainer, trainer.batchSize == batchSize, trainer.workers == n { return trainer }
        let next = Trainer(
            checked: network, optimizer: optimizer, placements: topology.placement(workers: n), batchSize: batchSize,
            seed: seed)
        if let previous = trainer {
            for (a, b) in zip(next.optimizer.slots, previous.optimizer.slots) {
                a.pointer.update(from: b.pointer, count: b.count)
            }
            next.resume(
                at: ResumePoint(
                    epoch: 1, position: 0, shuffleState: Random(seed: seed), lossSum: 0, correctSum: 0, seen: 0,
                    step: previous.step))
        }
        trainer = next
        return next
    }

    /// Samples must have the network's input width, and labels must index its output.
    func check(_ data: Dataset, _ what: String) throws(LoomError) {
        guard data.features == network.inputWidth else {
            throw .data(
                .mismatch(
                    data.name,
                    reason:
                        "\(what) samples have \(data.features) values; the model takes \(network.inputWidth)"))
        }
        try TrainingRun.checkLabels([(data, what)], model: network, dataset: data.name)
    }

    func dataset(x: [[Float]], y: [Int], checkLabels: Bool = true) throws(LoomError) -> Dataset {
        guard x.count == y.count else {
            throw .usage("x has \(x.count) rows but y has \(y.count) labels: give one label per row")
        }
        guard !x.isEmpty else { throw .usage("x has no rows") }
        let width = network.inputWidth
        if let bad = x.firstIndex(where: { $0.count != width }) {
            throw .usage("row \(bad) of x has \(x[bad].count) values; the model takes \(width)")
        }
        if let bad = x.firstIndex(where: { $0.contains { !$0.isFinite } }) {
            throw .usage("row \(bad) of x holds a value that is not a finite number")
        }
        if checkLabels, let bad = y.firstIndex(where: { $0 < 0 || $0 > Int(Int32.max) }) {
            throw .usage("y[\(bad)] = \(y[bad]): labels are class indices 0, 1, 2, …")
        }
        let classes = max(2, (y.max() ?? 0) + 1)
        return Dataset(
            name: "arrays", features: width, classes: classes, values: x.flatMap { $0 }, labels: y.map { Int32($0) })
    }

    /// Samples with real-valued targets, one row of `outputWidth` finite values each.
    func dataset(x: [[Float]], targets y: [[Float]]) throws(LoomError) -> Dataset {
        guard x.count == y.count else {
            throw .usage("x has \(x.count) rows but y has \(y.count): give one target row per sample")
        }
        let width = network.outputWidth
        if let bad = y.firstIndex(where: { $0.count != width }) {
            throw .usage(
                "row \(bad) of y has \(y[bad].count) values; the model has \(width) output\(width == 1 ? "" : "s")")
        }
        if let bad = y.firstIndex(where: { $0.contains { !$0.isFinite } }) {
            throw .usage("row \(bad) of y holds a value that is not a finite number")
        }
        return try dataset(x: x, y: [Int](repeating: 0, count: x.count), checkLabels: false)
            .withTargets(y.flatMap { $0 }, width: width)
    }

    /// The samples with weights, when given (one per sample, finite and ≥ 0).
    func weighted(_ data: Dataset, _ weights: [Float]?) throws(LoomError) -> Dataset {
        guard let weights else { return data }
        guard weights.count == data.count else {
            throw .usage("sampleWeight has \(weights.count) values for \(data.count) samples: give one per sample")
        }
        if let bad = weights.firstIndex(where: { !($0 >= 0 && $0.isFinite) }) {
            throw .usage("sampleWeight[\(bad)] = \(weights[bad]): weights must be finite and 0 or more")
        }
        return data.weighted(weights)
    }
}
