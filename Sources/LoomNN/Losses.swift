// Losses, each the mean over the batch of a per-sample loss (Keras' "sum over batch size" reduction), a sample
// weight w multiplying its sample's loss (Keras: Σ w·ℓ / B, B the batch's size, not Σ w).
// Targets t are a row's class index (one-hot for C outputs, the value itself for one output) or real values
// (regression, or one-hot / soft class probabilities).
//   sparse_categorical_crossentropy  ℓ = −log p_label          (fused with softmax: ℓ = logsumexp(z) − z_label)
//   categorical_crossentropy         ℓ = −Σ_j t_j log p_j      (fused: ℓ = Σ_j t_j (logsumexp(z) − z_j),
//                                                               ∂ℓ/∂z_j = p_j Σ_k t_k − t_j)
//   binary_crossentropy              ℓ = −t log p − (1−t) log(1−p), p = σ(z) of one output, t in [0, 1]
//                                    (fused with the sigmoid: ℓ = max(z, 0) − z·t + log(1 + e^−|z|), dz = p − t)
// Cross-entropy reads logits: after a softmax (sigmoid) that the loss fuses, or from a linear output with
// `from_logits: true`; `refusal(for:)` says which outputs each loss takes.
//   mean_squared_error               ℓ = (1/C) Σ_j (y_j − t_j)²
//   mean_absolute_error              ℓ = (1/C) Σ_j |y_j − t_j|       (∂ℓ/∂y_j = sign(y_j − t_j) / C)
//   huber                            ℓ = (1/C) Σ_j h(y_j − t_j), h(d) = d²/2 for |d| ≤ δ, δ(|d| − δ/2) beyond
//   sum_squared_error                ℓ = Σ_j (y_j − t_j)²      (Data Science from Scratch's SSE)
// Gradients carry the 1/B of the batch mean, B the whole batch's size (not a worker's share).
import Foundation
import LoomKernels

/// A training objective.
public enum Loss: String, CaseIterable, Sendable {
    /// Cross-entropy against class indices (Keras' sparse_categorical_crossentropy).
    case sparseCategoricalCrossentropy = "sparse_categorical_crossentropy"
    /// Cross-entropy against one-hot or soft targets.
    case categoricalCrossentropy = "categorical_crossentropy"
    /// The mean over outputs of the squared error.
    case meanSquaredError = "mean_squared_error"
    /// The mean over outputs of the absolute error.
    case meanAbsoluteError = "mean_absolute_error"
    /// The Huber loss: squared near 0, absolute beyond `delta`.
    case huber = "huber"
    /// The sum over outputs of the squared error (Data Science from Scratch).
    case sumSquaredError = "sum_squared_error"
    /// Cross-entropy of one sigmoid output against a 0/1 (or soft) target.
    case binaryCrossentropy = "binary_crossentropy"

    /// Whether the loss is a softmax cross-entropy (sparse or categorical).
    public var isCrossEntropy: Bool { self == .sparseCategoricalCrossentropy || self == .categoricalCrossentropy }

    /// Whether the loss reads logits (softmax or sigmoid cross-entropy): from the output layer, which then emits
    /// logits instead of applying its softmax / sigmoid, or from a linear output (`from_logits`).
    public var fusesOutput: Bool { isCrossEntropy || self == .binaryCrossentropy }

    /// Losses whose targets are naturally real values (Keras' regression losses).
    public var isRegression: Bool { !fusesOutput }

    /// The metric reported beside the loss: accuracy, or for a regression loss on real-valued targets the mean
    /// absolute error (Keras' `metrics=["mae"]`).
    public func metric(valueTargets: Bool) -> Metric {
        isRegression && valueTargets ? .meanAbsoluteError : .accuracy
    }

    /// For a block of rows: each row's loss (times its sample weight) and metric (1 or 0 for a right or wrong
    /// class, or the row's mean absolute error), and with `dy` the gradient ∂L/∂y scaled by `scale` (= 1/B) and
    /// the row's weight. A cross-entropy's `y` holds logits (`fusesOutput`): the gradient is ∂L/∂z, and when no
    /// gradient is asked `y` is overwritten by the probabilities.
    ///
    /// Class indices index the row (one-hot targets): the caller has checked every label against
    /// `labelLimit(outputs:)`, and real-valued targets' width against the outputs, before the first step; debug
    /// builds assert it here.
    public func evaluate(
        y: Rows, targets: Targets, scale: Float, dy: Rows?, options: LossOptions = LossOptions(),
        loss: UnsafeMutablePointer<Float>, metric: UnsafeMutablePointer<Float>
    ) {
        assert(targets.values == nil || targets.width == y.width, "targets of width \(targets.width) for \(y.width)")
        switch self {
        case .binaryCrossentropy:
            binaryCrossEntropyRows(y: y, targets: targets, scale: scale, dy: dy, loss: loss, correct: metric)
        case .sparseCategoricalCrossentropy, .categoricalCrossentropy:
            if targets.values != nil {
                softTargetCrossEntropyRows(y: y, targets: targets, scale: scale, dy: dy, loss: loss, correct: metric)
            } else {
                let out = dy ?? y
                softmaxCrossEntropyRows(
                    rows: y.count, cols: y.width, y.base, ld: y.ld, out: out.base, ldOut: out.ld,
                    labels: targets.labels, scale: scale, gradient: dy != nil, loss: loss, correct: metric)
                if targets.weights != nil { weigh(targets, rows: y.count, loss: loss, dy: dy) }
            }
        case .meanSquaredError, .sumSquaredError, .meanAbsoluteError, .huber:
            pointwiseRows(
                y: y, targets: targets, scale: scale, dy: dy, delta: options.delta, loss: loss, metric: metric)
        }
    }

    /// Labels must lie in `0..<labelLimit(outputs:)`: one class per output, or 0 and 1 as the target value of a
    /// one-output model.
    public func labelLimit(outputs: Int) -> Int { outputs == 1 && !isCrossEntropy ? 2 : outputs }

    /// The per-output losses: squared, absolute or Huber error against t_j, averaged over the outputs (summed for
    /// sum_squared_error). The metric is the row's accuracy against a class label, or with real-valued targets its
    /// mean absolute error.
    func pointwiseRows(
        y: Rows, targets: Targets, scale: Float, dy: Rows?, delta: Float, loss: UnsafeMutablePointer<Float>,
        metric: UnsafeMutablePointer<Float>
    ) {
        let c = y.width
        let perUnit: Float = self == .sumSquaredError ? 1 : 1 / Float(c)
        for i in 0..<y.count {
            let yr = y.row(i)
            let w = targets.weight(i)
            if targets.values == nil {
                assert(targets.labels[i] >= 0 && Int(targets.labels[i]) < labelLimit(outputs: c), "label out of range")
                metric[i] = isCorrect(yr, c, Int(targets.labels[i])) ? 1 : 0
            }
            var sum: Float = 0
            var absolute: Float = 0
            for j in 0..<c {
                let d = yr[j] - targets.value(i, j, outputs: c)
                let (value, slope) = pointwise(d, delta: delta)
                sum += value
                absolute += abs(d)
                if let dy {
                    var g = slope * perUnit * scale
                    if targets.weights != nil { g *= w }
                    dy.row(i)[j] = g
                }
            }
            loss[i] = targets.weights != nil ? sum * perUnit * w : sum * perUnit
            if targets.values != nil { metric[i] = absolute / Float(c) }
        }
    }

    /// One output's loss and its derivative in d = y − t.
    @inline(__always) func pointwise(_ d: Float, delta: Float) -> (Float, Float) {
        switch self {
        case .meanAbsoluteError: return (abs(d), d > 0 ? 1 : d < 0 ? -1 : 0)
        case .huber:
            return abs(d) <= delta ? (0.5 * d * d, d) : (delta * (abs(d) - 0.5 * delta), d > 0 ? delta : -delta)
        default: return (d * d, 2 * d)
        }
    }

    /// Multiplies each row's loss and gradient by its sample weight (after a kernel that knows no weights).
    func weigh(_ targets: Targets, rows: Int, loss: UnsafeMutablePointer<Float>, dy: Rows?) {
        for i in 0..<rows {
            let w = targets.weight(i)
            loss[i] *= w
            if let dy {
                let g = dy.row(i)
                for j in 0..<dy.width { g[j] *= w }
            }
        }
    }

    /// Categorical cross-entropy against one-hot or soft targets t (each row's probabilities), from logits z:
    /// ℓ = Σ_j t_j (logsumexp(z) − z_j), ∂ℓ/∂z_j = p_j Σ_k t_k − t_j. Right when argmax z = argmax t (Keras'
    /// categorical_accuracy). Without a gradient z is replaced by the probabilities p = softmax(z).
    func softTargetCrossEntropyRows(
        y: Rows, targets: Targets, scale: Float, dy: Rows?, loss: UnsafeMutablePointer<Float>,
        correct: UnsafeMutablePointer<Float>
    ) {
        let c = y.width
        for i in 0..<y.count {
            let z = y.row(i)
            let t = targets.values! + i * targets.width
            var top = 0
            var best = 0
            for j in 1..<c {
                if z[j] > z[top] { top = j }
                if t[j] > t[best] { best = j }
            }
            let m = z[top]
            var total: Float = 0
            for j in 0..<c { total += Foundation.exp(z[j] - m) }
            let lse = m + Foundation.log(total)
            var value: Float = 0
            var mass: Float = 0
            for j in 0..<c {
                value += t[j] * (lse - z[j])
                mass += t[j]
            }
            let w = targets.weight(i)
            loss[i] = value * w
            correct[i] = top == best ? 1 : 0
            for j in 0..<c {
                let p = Foundation.exp(z[j] - lse)
                if let dy { dy.row(i)[j] = (p * mass - t[j]) * scale * w } else { z[j] = p }
            }
        }
    }

    /// Binary cross-entropy from the logit z of each row's one output, against its target t (the label 0 or 1,
    /// or a real value in [0, 1]); without a gradient the output is replaced by the probability σ(z).
    func binaryCrossEntropyRows(
        y: Rows, targets: Targets, scale: Float, dy: Rows?, loss: UnsafeMutablePointer<Float>,
        correct: UnsafeMutablePointer<Float>
    ) {
        for i in 0..<y.count {
            let z = y.row(i)[0]
            assert(targets.values != nil || targets.labels[i] == 0 || targets.labels[i] == 1, "label out of range")
            let t = targets.value(i, 0, outputs: 1)
            let w = targets.weight(i)
            let value = max(z, 0) - z * t + Foundation.log1p(Foundation.exp(-abs(z)))
            loss[i] = targets.weights != nil ? value * w : value
            correct[i] = (z > 0) == (t > 0.5) ? 1 : 0
            let p = 1 / (1 + Foundation.exp(-z))
            if let dy {
                dy.row(i)[0] = targets.weights != nil ? (p - t) * scale * w : (p - t) * scale
            } else {
                y.row(i)[0] = p
            }
        }
    }

    /// Nil when this loss is defined for `output`; otherwise one sentence saying why not and what to use.
    ///
    /// Supported: cross-entropy after a softmax over at least 2 units (sigmoid over 1 unit for binary), fused and
    /// stable, with no dropout after it; with `from_logits`, after a linear output instead. Regression losses after
    /// any activation, except a softmax over 1 unit (constant 1). Everything else is refused when the config is
    /// loaded, before any buffer is sized from it.
    public func refusal(for output: OutputDescription, options: LossOptions = LossOptions()) -> String? {
        let place = output.place
        if options.fromLogits {
            guard fusesOutput else {
                return "from_logits applies to the cross-entropy losses only; remove it from \(rawValue)"
            }
            if output.activation != .linear {
                return
                    "with from_logits: true, \(rawValue) applies the \(self == .binaryCrossentropy ? "sigmoid" : "softmax") itself, but \(place) has activation \(output.activation.rawValue); make that layer linear, or drop from_logits"
            }
            if self == .binaryCrossentropy, let units = output.units, units != 1 {
                return
                    "binary_crossentropy needs one output (the logit of class 1), but \(place) has \(units) units; give it 1 unit"
            }
            if isCrossEntropy, let units = output.units, units < 2 {
                return
                    "\(rawValue) needs one logit per class (at least 2), but \(place) has \(units) unit; set its units to the number of classes, or use binary_crossentropy for one output"
            }
            return nil
        }
        if isCrossEntropy {
            if output.activation != .softmax {
                if output.units == 1 {
                    return
                        "\(rawValue) needs a softmax over one output per class, but \(place) has activation \(output.activation.rawValue); give it one unit per class (at least 2) and activation softmax, or use mean_squared_error for a one-output model (as configs/xor.yaml)"
                }
                return
                    "\(rawValue) needs a softmax output (probabilities over the classes), but \(place) has activation \(output.activation.rawValue); set its activation to softmax (or keep it linear and add from_logits: true), or use mean_squared_error for outputs that are not probabilities"
            }
            if let units = output.units, units < 2 {
                return
                    "\(rawValue) needs one output per class (at least 2), but \(place) has \(units) unit; set its units to the number of classes, or use mean_squared_error with one output (as configs/xor.yaml)"
            }
            if output.dropoutAfter {
                return
                    "\(rawValue) reads the softmax output as probabilities, but a dropout layer follows \(place); move the dropout before it"
            }
            return nil
        }
        if self == .binaryCrossentropy {
            if output.activation != .sigmoid || output.units.map({ $0 != 1 }) ?? false {
                return
                    "binary_crossentropy needs one sigmoid output (the probability of class 1), but \(place) has activation \(output.activation.rawValue); give it 1 unit and activation sigmoid (or linear with from_logits: true), or use sparse_categorical_crossentropy with a softmax over the classes"
            }
            if output.dropoutAfter {
                return
                    "binary_crossentropy reads the sigmoid output as a probability, but a dropout layer follows \(place); move the dropout before it"
            }
            return nil
        }
        if output.activation == .softmax, output.units == 1 {
            return
                "a softmax over 1 unit always outputs 1, so \(place) cannot learn with \(rawValue); use sigmoid or linear for a one-output model"
        }
        return nil
    }
}

/// A loss's settings beyond its kind (Keras' loss arguments).
public struct LossOptions: Sendable, Equatable {
    /// Cross-entropy: the last layer is linear and its outputs are logits; the loss applies the softmax (sigmoid)
    /// itself, as stably as when it is fused with the layer's.
    public var fromLogits: Bool
    /// Huber: where the loss turns from quadratic to linear.
    public var delta: Float

    /// Settings: read logits (`from_logits`), and Huber's `delta`.
    public init(fromLogits: Bool = false, delta: Float = 1) {
        self.fromLogits = fromLogits
        self.delta = delta
    }
}

/// What is reported beside the loss.
public enum Metric: String, Sendable, Codable {
    /// The fraction of samples whose predicted class is the target's (for one output: p > 0.5).
    case accuracy
    /// The mean over samples and outputs of |y − t| (regression), reported with the root mean squared error.
    case meanAbsoluteError = "mae"

    /// Whether larger is better (early stopping's "auto" mode).
    public var increases: Bool { self == .accuracy }
}

/// What a block of rows is compared against: each row's class index, or `width` real values per row (regression,
/// or one-hot / soft class probabilities), and optionally a weight per row. Pointers into a batch's buffers, valid
/// for the rows the loss is given; building one allocates nothing.
public struct Targets {
    /// Class indices (with real-valued targets, the index of each row's largest value: not read by the loss).
    public var labels: UnsafePointer<Int32>
    /// Real-valued targets, rows of `width` values (stride `width`); nil: class indices.
    public var values: UnsafePointer<Float>?
    /// Target values per row (0 with class indices).
    public var width: Int
    /// Each row's sample weight (class_weight and sample weights combined); nil: every weight is 1.
    public var weights: UnsafePointer<Float>?

    /// Targets of a block of rows.
    public init(
        labels: UnsafePointer<Int32>, values: UnsafePointer<Float>? = nil, width: Int = 0,
        weights: UnsafePointer<Float>? = nil
    ) {
        self.labels = labels
        self.values = values
        self.width = width
        self.weights = weights
    }

    /// The targets of rows `first…` of this block.
    @inline(__always) public func advanced(by first: Int) -> Targets {
        Targets(
            labels: labels + first, values: values.map { $0 + first * width }, width: width,
            weights: weights.map { $0 + first })
    }

    /// t_ij: the real value, or the one-hot of the class index (the index itself when there is one output).
    @inline(__always) public func value(_ i: Int, _ j: Int, outputs c: Int) -> Float {
        if let values { return values[i * width + j] }
        let label = Int(labels[i])
        return c == 1 ? Float(label) : (j == label ? 1 : 0)
    }

    /// Row `i`'s sample weight (1 without weights).
    @inline(__always) public func weight(_ i: Int) -> Float { weights?[i] ?? 1 }
}

/// A loss written by a user (LoomTape's `CustomLoss`): per-row losses and their gradients for a block of rows.
/// The model averages as the built-in losses do (Σ w·ℓ / B) and reports accuracy against class indices or the
/// mean absolute error against real-valued targets, as mean_squared_error does.
public protocol RowLoss: AnyObject {
    /// The name in the summary and the reports.
    var name: String { get }
    /// loss[r] = w_r·ℓ_r for each row r of `y`, and with `dy`, dy_r = w_r·scale·∂ℓ_r/∂y_r (`scale` = 1/B).
    func evaluate(y: Rows, targets: Targets, scale: Float, dy: Rows?, loss: UnsafeMutablePointer<Float>)
    /// Nil when the loss can read outputs of `outputWidth` values, else one line saying why not.
    func refusal(outputWidth: Int) -> String?
}

/// The metric of a row computed by a `RowLoss`: 1 or 0 against a class index, or the mean absolute error.
@inline(__always) func rowMetric(_ y: UnsafeMutablePointer<Float>, _ c: Int, _ targets: Targets, _ i: Int) -> Float {
    if targets.values == nil { return isCorrect(y, c, Int(targets.labels[i])) ? 1 : 0 }
    var absolute: Float = 0
    for j in 0..<c { absolute += abs(y[j] - targets.value(i, j, outputs: c)) }
    return absolute / Float(c)
}

/// The output end of a model, as a loss sees it: the activation that produces the outputs (the last layer
/// that is not a dropout), how many outputs there are (nil while the input width is unknown and no dense layer
/// sets it), and whether a dropout layer follows.
public struct OutputDescription: Sendable, Equatable {
    /// The activation producing the outputs.
    public var activation: ActivationKind
    /// The number of outputs, when known.
    public var units: Int?
    /// The index of the layer that applies `activation`, and its kind, for messages.
    public var layer: Int
    /// The output layer's type name, for messages.
    public var layerType: String
    /// Whether a dropout layer follows the output layer.
    public var dropoutAfter: Bool

    /// A model's layers, as far as its output is concerned.
    public enum LayerShape: Sendable {
        /// A dense layer.
        case dense(units: Int, activation: ActivationKind)
        /// An activation layer.
        case activation(ActivationKind)
        /// A dropout layer.
        case dropout
    }

    /// Derives the description from the layers (input → output) and, when known, the input width.
    public init(layers: [LayerShape], inputWidth: Int?) {
        var widths: [Int?] = []
        var width = inputWidth
        for layer in layers {
            if case .dense(let units, _) = layer { width = units }
            widths.append(width)
        }
        var index = layers.count - 1
        while index > 0, case .dropout = layers[index] { index -= 1 }
        dropoutAfter = index < layers.count - 1
        layer = index
        units = widths[index]
        switch layers[index] {
        case .dense(_, let kind):
            activation = kind
            layerType = "dense"
        case .activation(let kind):
            activation = kind
            layerType = "activation"
        case .dropout:
            activation = .linear
            layerType = "dropout"
        }
    }

    /// "model.layers.1 (dense, 10 units)".
    var place: String {
        "model.layers.\(layer) (\(layerType)" + (units.map { ", \($0) unit\($0 == 1 ? "" : "s")" } ?? "") + ")"
    }
}

/// Accuracy's test: argmax = label, or for one output, (y > 0.5) = label.
@inline(__always) func isCorrect(_ y: UnsafePointer<Float>, _ c: Int, _ label: Int) -> Bool {
    if c == 1 { return (y[0] > 0.5 ? 1 : 0) == label }
    var best = 0
    for j in 1..<c where y[j] > y[best] { best = j }
    return best == label
}
