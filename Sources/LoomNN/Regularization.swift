// Regularization and gradient clipping, as Keras 3 defines them.
//   kernel_regularizer  penalty l1·Σ|w| + l2·Σw² added to the loss      gradient l1·sign(w) + 2·l2·w
//   clipnorm c          each variable's gradient g ← g·c / max(‖g‖, c)  (‖g‖ its own L2 norm)
//   global_clipnorm c   every gradient g ← g·c / max(‖G‖, c)            (‖G‖ the norm of all of them together)
//   clipvalue c         g ← clamp(g, −c, c)
// The penalty's gradient is part of the gradient that is clipped (Keras differentiates the whole loss). The
// update kernel adds it (UpdateRule.l1, .l2), so the fused weight-gradient GEMM keeps working with regularizers.
import LoomKernels

/// Keras' `L1L2` regularizer: adds l1·Σ|w| + l2·Σw² to the loss.
public struct Regularizer: Equatable, Sendable, CustomStringConvertible {
    /// The L1 factor: l1·Σ|w| is added to the loss.
    public var l1: Float
    /// The L2 factor: l2·Σw² is added to the loss.
    public var l2: Float

    /// A penalty of `l1` and `l2`.
    public init(l1: Float = 0, l2: Float = 0) {
        self.l1 = l1
        self.l2 = l2
    }

    public var description: String {
        switch (l1 != 0, l2 != 0) {
        case (true, true): "l1_l2(l1=\(l1), l2=\(l2))"
        case (true, false): "l1(\(l1))"
        default: "l2(\(l2))"
        }
    }

    /// The penalty of weights whose Σ|w| and Σw² are given.
    public func penalty(absSum: Double, squareSum: Double) -> Double {
        Double(l1) * absSum + Double(l2) * squareSum
    }
}

/// Keras' gradient clipping (at most one kind per optimizer, as in Keras).
public enum GradientClipping: Equatable, Sendable {
    /// No clipping.
    case none
    /// `clipvalue`: every gradient element clamped to [−c, c].
    case value(Float)
    /// `clipnorm`: each variable's gradient rescaled to an L2 norm of at most c.
    case norm(Float)
    /// `global_clipnorm`: all gradients rescaled together to a global L2 norm of at most c.
    case globalNorm(Float)

    /// Whether the update must wait for gradient norms (the whole gradient before any update).
    public var needsNorms: Bool {
        switch self {
        case .norm, .globalNorm: true
        case .none, .value: false
        }
    }

    /// The factor a variable's gradient is multiplied by, given its Σg² and the Σg² of all gradients.
    public func scale(squares: Double, globalSquares: Double) -> Float {
        func scale(_ c: Float, _ squares: Double) -> Float {
            let norm = Float(squares.squareRoot())
            return norm > c ? c / norm : 1
        }
        switch self {
        case .none, .value: return 1
        case .norm(let c): return scale(c, squares)
        case .globalNorm(let c): return scale(c, globalSquares)
        }
    }
}

/// Regularized updates.
extension UpdateRule {
    /// The same rule with `regularizer`'s penalty gradient added (none: unchanged).
    public func regularized(_ regularizer: Regularizer?) -> UpdateRule {
        guard let regularizer else { return self }
        return regularized(l1: regularizer.l1, l2: regularizer.l2)
    }
}
