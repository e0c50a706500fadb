// Losses, each the mean over the batch of a per-sample loss (Keras' "sum over batch size" reduction).
// Labels are class indices; t is their one-hot vector (or the label itself for a one-output model).
//   sparse_categorical_crossentropy  ℓ = −log p_label          (fused with softmax: ℓ = logsumexp(z) − z_label)
//   categorical_crossentropy         ℓ = −Σ_j t_j log p_j      (= the above for one-hot targets)
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

    public var isCrossEntropy: Bool { self == .sparseCategoricalCrossentropy || self == .categoricalCrossentropy }

    /// For a block of rows: each row's loss and whether its prediction is right, and with `dy` the gradient
    /// ∂L/∂y scaled by `scale` (= 1/B). With `fusedSoftmax`, `y` holds logits: the gradient is ∂L/∂z, and when no
    /// gradient is asked `y` is overwritten by the probabilities.
    public func evaluate(
        y: Rows, labels: UnsafePointer<Int32>, scale: Float, dy: Rows?, fusedSoftmax: Bool,
        loss: UnsafeMutablePointer<Float>, correct: UnsafeMutablePointer<Float>
    ) {
        let c = y.width
        if fusedSoftmax {
            let out = dy ?? y
            softmaxCrossEntropyRows(
                rows: y.count, cols: c, y.base, ld: y.ld, out: out.base, ldOut: out.ld,
                labels: labels, scale: scale, gradient: dy != nil, loss: loss, correct: correct)
            return
        }
        for i in 0..<y.count {
            let yr = y.row(i)
            let label = Int(labels[i])
            correct[i] = isCorrect(yr, c, label) ? 1 : 0
            switch self {
            case .sparseCategoricalCrossentropy, .categoricalCrossentropy:
                // Keras clips probabilities to [ε, 1 − ε], ε = 1e-7.
                let p = min(max(yr[label], 1e-7), 1 - 1e-7)
                loss[i] = -Foundation.log(p)
                if let dy {
                    let g = dy.row(i)
                    for j in 0..<c { g[j] = 0 }
                    g[label] = yr[label] == p ? -scale / p : 0
                }
            case .meanSquaredError, .sumSquaredError:
                let perUnit: Float = self == .meanSquaredError ? 1 / Float(c) : 1
                var sum: Float = 0
                for j in 0..<c {
                    let d = yr[j] - target(label, j, c)
                    sum += d * d
                    if let dy { dy.row(i)[j] = 2 * d * perUnit * scale }
                }
                loss[i] = sum * perUnit
            }
        }
    }

    /// t_j: one-hot of the label, or the label itself when the model has one output.
    @inline(__always) func target(_ label: Int, _ j: Int, _ c: Int) -> Float {
        c == 1 ? Float(label) : (j == label ? 1 : 0)
    }
}

/// Accuracy's test: argmax = label, or for one output, (y > 0.5) = label.
@inline(__always) func isCorrect(_ y: UnsafePointer<Float>, _ c: Int, _ label: Int) -> Bool {
    if c == 1 { return (y[0] > 0.5 ? 1 : 0) == label }
    var best = 0
    for j in 1..<c where y[j] > y[best] { best = j }
    return best == label
}
