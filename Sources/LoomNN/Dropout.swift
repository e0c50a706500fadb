// Dropout (inverted): while training y = x ⊙ m / (1 − rate), m_ij ~ Bernoulli(1 − rate); otherwise y = x.
//   backward  dx = dy ⊙ m / (1 − rate)
// The mask is a hash of (seed, step, batch row, unit), recomputed in backward: nothing is stored, and the
// mask of a row does not depend on which worker holds it.
import LoomKernels

/// Randomly zeroes a fraction `rate` of its inputs while training, as Keras' `Dropout(rate)`.
public final class Dropout: Layer {
    /// The fraction of inputs zeroed while training.
    public let rate: Float
    /// The input width (set by `build`), also the output width.
    public private(set) var inputWidth = 0

    /// Dropout of `rate` (in [0, 1)) of the inputs; the kept ones are scaled by 1 / (1 − rate).
    public init(rate: Float) {
        self.rate = rate
    }

    public var typeName: String { "Dropout" }
    public var detail: String { "rate \(rate)" }
    /// Nil for a rate in [0, 1).
    public func refusal() -> String? {
        rate >= 0 && rate < 1 ? nil : "Dropout(rate: \(rate)): expected a rate in [0, 1)"
    }
    /// The input width: dropout keeps the width.
    public var outputWidth: Int { inputWidth }
    public var parameterTensors: [ParameterTensor] { [] }
    public func build(inputWidth: Int) { self.inputWidth = inputWidth }
    public func bind(parameters: UnsafeMutablePointer<Float>, gradients: UnsafeMutablePointer<Float>) {}
    /// No parameters to initialize.
    public func initialize(rng: inout Random) {}

    /// The mask value (0 or 1/(1 − rate)) of unit j of batch row r.
    @inline(__always) func keep(_ pass: Pass, row: Int, unit: Int) -> Float {
        hashUniform(pass.seed, pass.step, UInt64(pass.firstRow + row), UInt64(unit)) >= rate ? 1 / (1 - rate) : 0
    }

    public func forward(_ x: Rows, _ y: Rows, pass: Pass, workspace: GemmWorkspace) {
        guard pass.training && rate > 0 else { return copyRows(x, y) }
        for i in 0..<x.count {
            let xr = x.row(i)
            let yr = y.row(i)
            for j in 0..<x.width { yr[j] = xr[j] * keep(pass, row: i, unit: j) }
        }
    }

    public func backward(x: Rows, y: Rows, dy: Rows, dx: Rows?, pass: Pass, workspace: GemmWorkspace) {
        guard let dx else { return }
        guard pass.training && rate > 0 else { return copyRows(dy, dx) }
        for i in 0..<dy.count {
            let g = dy.row(i)
            let out = dx.row(i)
            for j in 0..<dy.width { out[j] = g[j] * keep(pass, row: i, unit: j) }
        }
    }

    public func parameterGradient(
        x: Rows, dy: Rows, part: Int, of parts: Int, update: UpdateRule?,
        workspace: GemmWorkspace
    ) -> ParameterSlices { .none }
}
