// The types the kernels share with their callers, in one module below both kernel builds (AVX2 and AVX-512):
// aligned buffers, the activation kinds, a GEMM's epilogue and workspace, an optimizer step's rule. They hold no
// SIMD code, so one copy serves both builds.

/// An activation function, applied element-wise (softmax: row-wise).
public enum ActivationKind: String, CaseIterable, Sendable {
    case linear, relu, sigmoid, tanh, softmax
}

/// A k × `width` matrix B packed beforehand in the layout a product reads it in, and the column where the
/// product's B starts in it: what `gemm` and `gemmUpdate` read instead of packing (or streaming) B themselves.
/// The layout depends on the product: `packOperand` writes it for products whose A is not transposed (register
/// panels, or the dot kernel's padded columns for products at most 16 wide), `packPanels` writes the panels
/// the register-tiled kernels read (products with a transposed A, such as weight gradients). For the panels,
/// `firstColumn` must start a panel (a multiple of two register vectors); where it does not, the product reads
/// B as usual.
public struct PackedPanels {
    /// The packed values.
    public var base: UnsafePointer<Float>
    /// Columns of the whole packed matrix.
    public var width: Int
    /// The product's first column of B within the packed matrix.
    public var firstColumn: Int

    /// The packed matrix at `base`, `width` columns wide, read from column `firstColumn`.
    public init(_ base: UnsafePointer<Float>, width: Int, firstColumn: Int = 0) {
        self.base = base
        self.width = width
        self.firstColumn = firstColumn
    }
}

/// What a GEMM does to each output element as it stores it (after the last K block).
public enum GemmEpilogue {
    /// C = acc
    case none
    /// C = acc + bias[j]
    case bias(UnsafePointer<Float>)
    /// C = max(0, acc + bias[j]) — a dense layer with relu, in one pass.
    case biasRelu(UnsafePointer<Float>)
    /// C = acc where mask[i, j] > 0, else 0 — the relu derivative applied to an incoming gradient. The mask is
    /// a relu *output* (so > 0 exactly where the pre-activation was), row stride `ld`.
    case reluMask(UnsafePointer<Float>, ld: Int)
}

/// Scratch memory for packing B panels. One per worker, allocated once; it grows on first use to the largest
/// shape seen, so a steady-state training step never allocates.
public final class GemmWorkspace {
    var storage: AlignedBuffer
    public init(capacity: Int = 0) { storage = AlignedBuffer(count: capacity, zeroed: false) }

    /// Grows the buffer to at least `floats` (the kernels call it with what a product needs).
    public func reserve(_ floats: Int) {
        if storage.count < floats { storage = AlignedBuffer(count: floats, zeroed: false) }
    }
    /// The scratch memory.
    public var pointer: UnsafeMutablePointer<Float> { storage.pointer }
}

/// One optimizer step's rule and where its state lives. Parameters, gradients and every slot are parallel
/// flat arrays: element i of each belongs to parameter i.
public struct UpdateRule: @unchecked Sendable {
    // Sendable: plain pointers into buffers owned by the optimizer and model; see LoomEngine's SharedState.
    public enum Kind: Sendable {
        case sgd, momentum, nesterov, rmsprop, rmspropMomentum, rmspropCentered, rmspropCenteredMomentum, adam
    }
    public var kind: Kind
    public var learningRate: Float
    /// momentum (sgd, rmsprop), or β₁ (adam)
    public var a: Float = 0
    /// ρ (rmsprop), or β₂ (adam)
    public var b: Float = 0
    public var epsilon: Float = 0
    /// Adam's α for this step.
    public var alpha: Float = 0
    /// Decoupled weight decay (Keras 3, AdamW): w −= w·wd·lr before the update; 0: none.
    public var weightDecay: Float = 0
    /// Gradients are clipped to [−clipValue, clipValue] first (Keras' clipvalue); 0: no clipping.
    public var clipValue: Float = 0
    /// A penalty l1·Σ|w| + l2·Σw² on these parameters (Keras' kernel_regularizer): its gradient
    /// l1·sign(w) + 2·l2·w, at the weights before this step, is added to the gradient first; 0: none.
    public var l1: Float = 0
    public var l2: Float = 0
    /// The gradient is multiplied by this after the penalty (clipnorm / global_clipnorm); 1: unchanged.
    public var gradientScale: Float = 1
    public var parameters: UnsafeMutablePointer<Float>
    public var gradients: UnsafeMutablePointer<Float>
    public var slot0: UnsafeMutablePointer<Float>
    public var slot1: UnsafeMutablePointer<Float>
    public var slot2: UnsafeMutablePointer<Float>

    public init(
        kind: Kind, learningRate: Float, a: Float = 0, b: Float = 0, epsilon: Float = 0, alpha: Float = 0,
        parameters: UnsafeMutablePointer<Float>, gradients: UnsafeMutablePointer<Float>,
        slot0: UnsafeMutablePointer<Float>, slot1: UnsafeMutablePointer<Float>, slot2: UnsafeMutablePointer<Float>
    ) {
        self.kind = kind
        self.learningRate = learningRate
        self.a = a
        self.b = b
        self.epsilon = epsilon
        self.alpha = alpha
        self.parameters = parameters
        self.gradients = gradients
        self.slot0 = slot0
        self.slot1 = slot1
        self.slot2 = slot2
    }

    /// The same rule with the penalty `l1`, `l2` on its parameters (Keras' regularizers).
    public func regularized(l1: Float, l2: Float) -> UpdateRule {
        var r = self
        r.l1 = l1
        r.l2 = l2
        return r
    }

    /// The same rule for the parameters from `offset` on: every pointer (parameters, gradients, slots) advanced.
    public func advanced(by offset: Int) -> UpdateRule {
        var r = self
        r.parameters += offset
        r.gradients += offset
        r.slot0 += offset
        r.slot1 += offset
        r.slot2 += offset
        return r
    }

}
