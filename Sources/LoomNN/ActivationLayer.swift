// Activation: y = f(x), element-wise (softmax: row-wise).
//   forward   y = f(x)
//   backward  dx = dy ⊙ f'(y)      (softmax: dx = y ⊙ (dy − Σ dy·y))
import LoomKernels

/// A parameter-free nonlinearity, as Keras' `Activation("relu")`.
public final class ActivationLayer: Layer {
    /// The activation function.
    public let kind: ActivationKind
    /// The input width (set by `build`), also the output width.
    public private(set) var inputWidth = 0
    /// See `Dense.emitsLogits` and `Dense.incomingMasked`.
    public var emitsLogits = false
    /// Set by the model when the layer above masks this relu's gradient in its own store.
    public var incomingMasked = false

    /// An activation layer applying `kind`.
    public init(_ kind: ActivationKind) { self.kind = kind }

    public var typeName: String { "Activation" }
    public var detail: String { kind.rawValue }
    /// The input width: an activation keeps the width.
    public var outputWidth: Int { inputWidth }
    public var parameterTensors: [ParameterTensor] { [] }
    public func build(inputWidth: Int) { self.inputWidth = inputWidth }
    public func bind(parameters: UnsafeMutablePointer<Float>, gradients: UnsafeMutablePointer<Float>) {}
    /// No parameters to initialize.
    public func initialize(rng: inout Random) {}

    public func forward(_ x: Rows, _ y: Rows, pass: Pass, workspace: GemmWorkspace) {
        copyRows(x, y)
        if !emitsLogits { applyActivation(kind, rows: y.count, cols: y.width, y.base, ld: y.ld) }
    }

    public func backward(x: Rows, y: Rows, dy: Rows, dx: Rows?, pass: Pass, workspace: GemmWorkspace) {
        if !incomingMasked && !emitsLogits {
            multiplyActivationDerivative(
                kind, rows: dy.count, cols: dy.width, y: y.base, ldy: y.ld,
                dy: dy.base, ld: dy.ld)
        }
        if let dx { copyRows(dy, dx) }
    }

    public func parameterGradient(
        x: Rows, dy: Rows, part: Int, of parts: Int, update: UpdateRule?,
        workspace: GemmWorkspace
    ) -> ParameterSlices { .none }
}

/// Copies a block of rows (same shape) from `src` to `dst`.
func copyRows(_ src: Rows, _ dst: Rows) {
    for i in 0..<src.count { dst.row(i).update(from: src.row(i), count: src.width) }
}
