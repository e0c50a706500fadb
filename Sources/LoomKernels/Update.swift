// Parameter updates, as Keras 3 writes them (g: the batch-mean gradient, t: the 1-based step):
//   sgd          w −= lr·g
//   momentum     v = m·v − lr·g;  w += v          (nesterov: w += m·v − lr·g)
//   rmsprop      a = ρ·a + (1−ρ)·g²;  w −= lr·g / √(a + ε)        (ε inside the root)
//                momentum m: v = m·v + lr·g/√(a + ε); w −= v;  centered: ḡ = ρ·ḡ + (1−ρ)·g, root √(a − ḡ² + ε)
//   adam         m += (g − m)(1−β₁);  v += (g² − v)(1−β₂);  w −= α·m/(√v + ε),  α = lr·√(1−β₂ᵗ)/(1−β₁ᵗ)
// One vector of arithmetic, used both by a plain loop over a parameter range and inside the weight-gradient
// GEMM's store (the gradient is applied while still in registers and never written to memory). Both go through
// `apply`, lanes past the end are zero-filled, so the result never depends on which path or range boundary
// produced it.

/// One optimizer step's rule and where its state lives. Parameters, gradients and every slot are parallel
/// flat arrays: element i of each belongs to parameter i.
public struct UpdateRule: @unchecked Sendable {
    // Sendable: plain pointers into buffers owned by the optimizer and model; see LoomEngine's SharedState.
    public enum Kind: Sendable { case sgd, momentum, nesterov, rmsprop, rmspropMomentum, rmspropCentered, rmspropCenteredMomentum, adam }
    public var kind: Kind
    public var learningRate: Float
    /// momentum (sgd, rmsprop), or β₁ (adam)
    public var a: Float = 0
    /// ρ (rmsprop), or β₂ (adam)
    public var b: Float = 0
    public var epsilon: Float = 0
    /// Adam's α for this step.
    public var alpha: Float = 0
    public var parameters: UnsafeMutablePointer<Float>
    public var gradients: UnsafeMutablePointer<Float>
    public var slot0: UnsafeMutablePointer<Float>
    public var slot1: UnsafeMutablePointer<Float>
    public var slot2: UnsafeMutablePointer<Float>

    public init(kind: Kind, learningRate: Float, a: Float = 0, b: Float = 0, epsilon: Float = 0, alpha: Float = 0,
                parameters: UnsafeMutablePointer<Float>, gradients: UnsafeMutablePointer<Float>,
                slot0: UnsafeMutablePointer<Float>, slot1: UnsafeMutablePointer<Float>, slot2: UnsafeMutablePointer<Float>) {
        self.kind = kind; self.learningRate = learningRate; self.a = a; self.b = b; self.epsilon = epsilon
        self.alpha = alpha; self.parameters = parameters; self.gradients = gradients
        self.slot0 = slot0; self.slot1 = slot1; self.slot2 = slot2
    }

    /// Updates parameters i..<i+lanes given their gradient vector g (lanes ≤ vecLanes).
    @inline(__always)
    public func apply(_ g: Vec, at i: Int, lanes n: Int) {
        let w = parameters + i
        let lr = learningRate
        switch kind {
        case .sgd:
            storeLanes(loadLanes(w, n) - g * lr, w, n)
        case .momentum, .nesterov:
            let v = slot0 + i
            let vi = loadLanes(v, n) * a - g * lr
            storeLanes(vi, v, n)
            storeLanes(loadLanes(w, n) + (kind == .nesterov ? vi * a - g * lr : vi), w, n)
        case .rmsprop, .rmspropMomentum, .rmspropCentered, .rmspropCenteredMomentum:
            let rho = b
            let acc = slot0 + i
            let ai = loadLanes(acc, n) * rho + g * g * (1 - rho)
            storeLanes(ai, acc, n)
            var denominator = ai + epsilon
            if kind == .rmspropCentered || kind == .rmspropCenteredMomentum {
                let gbar = (kind == .rmspropCentered ? slot1 : slot2) + i
                let bi = loadLanes(gbar, n) * rho + g * (1 - rho)
                storeLanes(bi, gbar, n)
                denominator = ai - bi * bi + epsilon
            }
            let increment = g * lr / vsqrt(denominator)
            if kind == .rmspropMomentum || kind == .rmspropCenteredMomentum {
                let v = slot1 + i
                let vi = loadLanes(v, n) * a + increment
                storeLanes(vi, v, n)
                storeLanes(loadLanes(w, n) - vi, w, n)
            } else {
                storeLanes(loadLanes(w, n) - increment, w, n)
            }
        case .adam:
            let mp = slot0 + i, vp = slot1 + i
            var mi = loadLanes(mp, n)
            mi += (g - mi) * (1 - a)
            var vi = loadLanes(vp, n)
            vi += (g * g - vi) * (1 - b)
            storeLanes(mi, mp, n)
            storeLanes(vi, vp, n)
            storeLanes(loadLanes(w, n) - mi * alpha / (vsqrt(vi) + epsilon), w, n)
        }
    }
}

/// Applies `rule` to parameters `range`, reading their gradients from `rule.gradients`.
public func applyUpdate(_ rule: UpdateRule, _ range: Range<Int>) {
    var i = range.lowerBound
    while i < range.upperBound {
        let n = min(vecLanes, range.upperBound - i)
        rule.apply(loadLanes(rule.gradients + i, n), at: i, lanes: n)
        i += n
    }
}

/// Loads n ≤ lanes floats (a full vector when n = lanes), zero-filling the rest.
@inline(__always) func loadLanes(_ p: UnsafeMutablePointer<Float>, _ n: Int) -> Vec {
    n == vecLanes ? loadVec(p) : loadPartial(p, n)
}
@inline(__always) func storeLanes(_ v: Vec, _ p: UnsafeMutablePointer<Float>, _ n: Int) {
    if n == vecLanes { storeVec(v, p) } else { storePartial(v, p, n) }
}
