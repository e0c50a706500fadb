// CustomLoss: a loss written with tensor operations (Keras' custom loss, `loss(y_true, y_pred)` returning each
// sample's loss), whose gradient the GradientTape derives. A model built with one trains data-parallel like any
// other: each worker evaluates its rows on its own thread's tape.
//   loss      ℓ_r = call(y, t)[r]                      each row's loss, shape (rows,)
//   gradient  dy_r = w_r · (1/B) · ∂ℓ_r/∂y_r           the batch mean's gradient, as the built-in losses
// The targets tensor is (rows, outputs): the real-valued targets, or the one-hot of each class index (the index
// itself for a one-output model). As with layers, `call` must treat rows independently (no sum or mean over the
// batch axis), so that a row's loss and gradient do not depend on which worker holds it.
import LoomKernels
import LoomNN

/// A loss written with tensor operations. Subclass it and return each row's loss from `call`:
///
///     final class CrossEntropy: CustomLoss {
///         override func call(predictions p: Tensor, targets t: Tensor) throws(TapeError) -> Tensor {
///             try -(t * p.clip(1e-7, 1 - 1e-7).log()).sum(axis: 1)
///         }
///     }
///     let model = try Model(inputWidth: 784, layers: […, Dense(units: 10, activation: .softmax)],
///                           loss: CrossEntropy())
open class CustomLoss: RowLoss {
    /// A loss; override `call(predictions:targets:)`.
    public init() {}

    /// Each row's loss, shape (rows,) or (rows, 1), from predictions and targets of shape (rows, outputs).
    open func call(predictions: Tensor, targets: Tensor) throws(TapeError) -> Tensor {
        throw .argument("\(name) does not override call(predictions:targets:)")
    }

    open var name: String { String(describing: type(of: self)) }

    /// Runs `call` and its gradient once on two rows of zeros: nil when that works, else why not.
    public func refusal(outputWidth: Int) -> String? {
        let rows = 2
        let tape = GradientTape()
        do {
            return try tape.record { () throws(TapeError) -> String? in
                let zeros = [Float](repeating: 0, count: rows * outputWidth)
                let p = try tape.watch(tape.constant(zeros, shape: [rows, outputWidth]))
                let l = try call(predictions: p, targets: tape.constant(zeros, shape: [rows, outputWidth]))
                guard l.shape == Shape([rows]) || l.shape == Shape([rows, 1]) else {
                    return
                        "\(name).call returned a tensor of shape \(l.shape) for \(rows) rows; expected each row's loss, shape (\(rows),)"
                }
                _ = try tape.gradient(of: l.sum(), withRespectTo: [p])
                return nil
            }
        } catch {
            return "\(name).call: \(error)"
        }
    }

    public func evaluate(y: Rows, targets: Targets, scale: Float, dy: Rows?, loss: UnsafeMutablePointer<Float>) {
        let tape = GradientTape.ofThisThread()
        tape.reset()
        do {
            try tape.record { () throws(TapeError) in
                let p = dy == nil ? tape.rows(y) : try tape.watch(tape.rows(y))
                let l = try call(predictions: p, targets: tape.targets(targets, rows: y.count, width: y.width))
                for r in 0..<y.count { loss[r] = l.data[r] * targets.weight(r) }
                guard let dy else { return }
                try tape.backward(from: l.sum())
                let g = tape.gradientBuffer(Int(p.node))
                for r in 0..<y.count {
                    let factor = scale * targets.weight(r)
                    for j in 0..<y.width { dy.row(r)[j] = g[r * y.width + j] * factor }
                }
            }
        } catch {
            preconditionFailure("\(name): \(error), although the same call passed when the model was built")
        }
    }
}

extension GradientTape {
    /// Targets of `rows` rows as a (rows, width) constant: real values, or one-hot class indices.
    func targets(_ t: Targets, rows: Int, width: Int) -> Tensor {
        let out = values.take(rows * width)
        for r in 0..<rows {
            for j in 0..<width { out[r * width + j] = t.value(r, j, outputs: width) }
        }
        return constant(wrapping: out, shape: [rows, width])
    }
}
