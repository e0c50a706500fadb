// Losses, each the mean over the batch of a per-sample loss (Keras' "sum over batch size" reduction).
// Labels are class indices; t is their one-hot vector (or the label itself for a one-output model).
//   sparse_categorical_crossentropy  ℓ = −log p_label          (fused with softmax: ℓ = logsumexp(z) − z_label)
//   categorical_crossentropy         ℓ = −Σ_j t_j log p_j      (= the above for one-hot targets)
//   binary_crossentropy              ℓ = −t log p − (1−t) log(1−p), p = σ(z) of one output, t the label 0 or 1
//                                    (fused with the sigmoid: ℓ = max(z, 0) − z·t + log(1 + e^−|z|), dz = p − t)
// Cross-entropy is defined here only after a softmax (fused); `refusal(for:)` says which outputs each loss takes.
//   mean_squared_error               ℓ = (1/C) Σ_j (y_j − t_j)²
//   sum_squared_error                ℓ = Σ_j (y_j − t_j)²      (Data Science from Scratch's SSE)
// Gradients carry the 1/B of the batch mean, B the whole batch's size (not a worker's share).
import Foundation
import LoomKernels

/// A training objective.
public enum Loss: String, CaseIterable, Sendable {
    case sparseCategoricalCrossentropy = "sparse_categorical_crossentropy"
    case categoricalCrossentropy = "categorical_crossentropy"
    case meanSquaredError = "mean_squared_error"
    case sumSquaredError = "sum_squared_error"
    case binaryCrossentropy = "binary_crossentropy"

    public var isCrossEntropy: Bool { self == .sparseCategoricalCrossentropy || self == .categoricalCrossentropy }

    /// Whether the loss applies the output layer's activation itself (softmax or sigmoid: the layer emits
    /// logits and receives ∂L/∂z).
    public var fusesOutput: Bool { isCrossEntropy || self == .binaryCrossentropy }

    /// For a block of rows: each row's loss and whether its prediction is right, and with `dy` the gradient
    /// ∂L/∂y scaled by `scale` (= 1/B). A cross-entropy loss is always fused with the softmax that precedes it
    /// (`refusal(for:)` admits no other output): `y` holds logits, the gradient is ∂L/∂z, and when no gradient
    /// is asked `y` is overwritten by the probabilities.
    ///
    /// Labels index the row (cross-entropy, one-hot targets): the caller has checked every label against
    /// `labelLimit(outputs:)` before the first step; debug builds assert it here.
    public func evaluate(
        y: Rows, labels: UnsafePointer<Int32>, scale: Float, dy: Rows?,
        loss: UnsafeMutablePointer<Float>, correct: UnsafeMutablePointer<Float>
    ) {
        let c = y.width
        if self == .binaryCrossentropy {
            binaryCrossEntropyRows(y: y, labels: labels, scale: scale, dy: dy, loss: loss, correct: correct)
            return
        }
        if isCrossEntropy {
            let out = dy ?? y
            softmaxCrossEntropyRows(
                rows: y.count, cols: c, y.base, ld: y.ld, out: out.base, ldOut: out.ld,
                labels: labels, scale: scale, gradient: dy != nil, loss: loss, correct: correct)
            return
        }
        let perUnit: Float = self == .meanSquaredError ? 1 / Float(c) : 1
        for i in 0..<y.count {
            let yr = y.row(i)
            let label = Int(labels[i])
            assert(label >= 0 && label < labelLimit(outputs: c), "label \(label) out of range for \(c) outputs")
            correct[i] = isCorrect(yr, c, label) ? 1 : 0
            var sum: Float = 0
            for j in 0..<c {
                let d = yr[j] - target(label, j, c)
                sum += d * d
                if let dy { dy.row(i)[j] = 2 * d * perUnit * scale }
            }
            loss[i] = sum * perUnit
        }
    }

    /// t_j: one-hot of the label, or the label itself when the model has one output.
    @inline(__always) func target(_ label: Int, _ j: Int, _ c: Int) -> Float {
        c == 1 ? Float(label) : (j == label ? 1 : 0)
    }

    /// Labels must lie in `0..<labelLimit(outputs:)`: one class per output, or 0 and 1 as the target value of a
    /// one-output model.
    public func labelLimit(outputs: Int) -> Int { outputs == 1 && !isCrossEntropy ? 2 : outputs }

    /// Binary cross-entropy from the logit z of each row's one output, against its label t (0 or 1); without
    /// a gradient the output is replaced by the probability σ(z).
    func binaryCrossEntropyRows(
        y: Rows, labels: UnsafePointer<Int32>, scale: Float, dy: Rows?, loss: UnsafeMutablePointer<Float>,
        correct: UnsafeMutablePointer<Float>
    ) {
        for i in 0..<y.count {
            let z = y.row(i)[0]
            let label = Int(labels[i])
            assert(label == 0 || label == 1, "label \(label) out of range for binary_crossentropy")
            let t = Float(label)
            loss[i] = max(z, 0) - z * t + Foundation.log1p(Foundation.exp(-abs(z)))
            correct[i] = (z > 0 ? 1 : 0) == label ? 1 : 0
            let p = 1 / (1 + Foundation.exp(-z))
            if let dy { dy.row(i)[0] = (p - t) * scale } else { y.row(i)[0] = p }
        }
    }

    /// Nil when this loss is defined for `output`; otherwise one sentence saying why not and what to use.
    ///
    /// Supported: cross-entropy after a softmax over at least 2 units, with no dropout after it (fused, stable);
    /// squared errors after any activation, except a softmax over 1 unit (constant 1). Everything else is
    /// refused when the config is loaded, before any buffer is sized from it.
    public func refusal(for output: OutputDescription) -> String? {
        let place = output.place
        if isCrossEntropy {
            if output.activation != .softmax {
                if output.units == 1 {
                    return
                        "\(rawValue) needs a softmax over one output per class, but \(place) has activation \(output.activation.rawValue); give it one unit per class (at least 2) and activation softmax, or use mean_squared_error for a one-output model (as configs/xor.yaml)"
                }
                return
                    "\(rawValue) needs a softmax output (probabilities over the classes), but \(place) has activation \(output.activation.rawValue); set its activation to softmax, or use mean_squared_error for outputs that are not probabilities"
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
                    "binary_crossentropy needs one sigmoid output (the probability of class 1), but \(place) has activation \(output.activation.rawValue); give it 1 unit and activation sigmoid, or use sparse_categorical_crossentropy with a softmax over the classes"
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

/// The output end of a model, as a loss sees it: the activation that produces the outputs (the last layer
/// that is not a dropout), how many outputs there are (nil while the input width is unknown and no dense layer
/// sets it), and whether a dropout layer follows.
public struct OutputDescription: Sendable, Equatable {
    public var activation: ActivationKind
    public var units: Int?
    /// The index of the layer that applies `activation`, and its kind, for messages.
    public var layer: Int
    public var layerType: String
    public var dropoutAfter: Bool

    /// A model's layers, as far as its output is concerned.
    public enum LayerShape: Sendable {
        case dense(units: Int, activation: ActivationKind)
        case activation(ActivationKind)
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
