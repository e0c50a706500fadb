// Optimizers with Keras 3's update rules and defaults, so the same config means the same thing as in Keras.
// g is the batch-mean gradient, t the 1-based step.
//   sgd      momentum 0:  w −= lr·g
//            momentum m:  v = m·v − lr·g;  w += v          (nesterov: w += m·v − lr·g)
//   rmsprop  a = ρ·a + (1−ρ)·g²;  w −= lr·g / √(a + ε)   (ε inside the root, as Keras 3)
//            momentum m:  v = m·v + lr·g/√(a + ε);  w −= v
//            centered:    ḡ = ρ·ḡ + (1−ρ)·g, and the root is √(a − ḡ² + ε)
//   adam     m += (g − m)(1−β₁);  v += (g² − v)(1−β₂);  α = lr·√(1−β₂ᵗ)/(1−β₁ᵗ);  w −= α·m/(√v + ε)
// Every slot is one flat buffer over all parameters, so an update is one vectorized loop over any range, and
// the element-wise arithmetic is the same whatever range boundaries the workers use.
import Foundation
import LoomKernels

/// Which optimizer, with its hyperparameters (Keras 3 defaults).
public enum OptimizerSpec: Equatable, Sendable, CustomStringConvertible {
    case sgd(learningRate: Float = 0.01, momentum: Float = 0, nesterov: Bool = false)
    case rmsprop(learningRate: Float = 0.001, rho: Float = 0.9, epsilon: Float = 1e-7, momentum: Float = 0,
                 centered: Bool = false)
    case adam(learningRate: Float = 0.001, beta1: Float = 0.9, beta2: Float = 0.999, epsilon: Float = 1e-7)

    public static let names = ["sgd", "rmsprop", "adam"]

    public var name: String {
        switch self { case .sgd: "sgd"; case .rmsprop: "rmsprop"; case .adam: "adam" }
    }
    public var learningRate: Float {
        switch self {
        case .sgd(let lr, _, _), .rmsprop(let lr, _, _, _, _), .adam(let lr, _, _, _): lr
        }
    }
    public var description: String {
        switch self {
        case .sgd(let lr, let m, let n): "sgd(learning_rate: \(lr), momentum: \(m), nesterov: \(n))"
        case .rmsprop(let lr, let rho, let eps, let m, let c):
            "rmsprop(learning_rate: \(lr), rho: \(rho), epsilon: \(eps), momentum: \(m), centered: \(c))"
        case .adam(let lr, let b1, let b2, let eps):
            "adam(learning_rate: \(lr), beta_1: \(b1), beta_2: \(b2), epsilon: \(eps))"
        }
    }

    /// The state slots this optimizer keeps per parameter, by name.
    public var slotNames: [String] {
        switch self {
        case .sgd(_, let m, _): m != 0 ? ["momentum"] : []
        case .rmsprop(_, _, _, let m, let c): ["velocity"] + (m != 0 ? ["momentum"] : []) + (c ? ["average_gradient"] : [])
        case .adam: ["m", "v"]
        }
    }
}

/// An optimizer and its state: one flat slot buffer per state variable, parallel to the parameters.
public final class Optimizer: @unchecked Sendable {
    // Sendable: the slots are only ever touched through `update`, on disjoint ranges per worker between barriers.
    public let spec: OptimizerSpec
    public let parameterCount: Int
    /// The state buffers, in `spec.slotNames` order.
    public let slots: [AlignedBuffer]
    private let s0: UnsafeMutablePointer<Float>
    private let s1: UnsafeMutablePointer<Float>
    private let s2: UnsafeMutablePointer<Float>

    public init(_ spec: OptimizerSpec, parameterCount: Int) {
        self.spec = spec
        self.parameterCount = parameterCount
        slots = spec.slotNames.map { _ in AlignedBuffer(count: parameterCount) }
        s0 = slots.count > 0 ? slots[0].pointer : UnsafeMutablePointer(bitPattern: 64)!
        s1 = slots.count > 1 ? slots[1].pointer : UnsafeMutablePointer(bitPattern: 64)!
        s2 = slots.count > 2 ? slots[2].pointer : UnsafeMutablePointer(bitPattern: 64)!
    }

    /// Applies one update to parameters `range`, `step` the 1-based optimizer step.
    public func update(_ range: Range<Int>, parameters w: UnsafeMutablePointer<Float>,
                       gradients g: UnsafePointer<Float>, step: Int) {
        switch spec {
        case .sgd(let lr, let m, let nesterov):
            if m == 0 {
                forEachVector(range) { i, n in
                    storeN(load(w, i, n) - load(g, i, n) * lr, w, i, n)
                }
            } else {
                let v = s0
                forEachVector(range) { i, n in
                    let gi = load(g, i, n)
                    let vi = load(v, i, n) * m - gi * lr
                    storeN(vi, v, i, n)
                    storeN(load(w, i, n) + (nesterov ? vi * m - gi * lr : vi), w, i, n)
                }
            }
        case .rmsprop(let lr, let rho, let eps, let m, let centered):
            let a = s0, v = s1, gbar = m != 0 ? s2 : s1
            forEachVector(range) { i, n in
                let gi = load(g, i, n)
                let ai = load(a, i, n) * rho + gi * gi * (1 - rho)
                storeN(ai, a, i, n)
                var denominator = ai + eps
                if centered {
                    let bi = load(gbar, i, n) * rho + gi * (1 - rho)
                    storeN(bi, gbar, i, n)
                    denominator = ai - bi * bi + eps
                }
                let increment = gi * lr / vsqrt(denominator)
                if m != 0 {
                    let vi = load(v, i, n) * m + increment
                    storeN(vi, v, i, n)
                    storeN(load(w, i, n) - vi, w, i, n)
                } else {
                    storeN(load(w, i, n) - increment, w, i, n)
                }
            }
        case .adam(let lr, let b1, let b2, let eps):
            let t = Float(step)
            let alpha = lr * (1 - Foundation.pow(b2, t)).squareRoot() / (1 - Foundation.pow(b1, t))
            let mm = s0, vv = s1
            forEachVector(range) { i, n in
                let gi = load(g, i, n)
                var mi = load(mm, i, n)
                mi += (gi - mi) * (1 - b1)
                var vi = load(vv, i, n)
                vi += (gi * gi - vi) * (1 - b2)
                storeN(mi, mm, i, n)
                storeN(vi, vv, i, n)
                storeN(load(w, i, n) - mi * alpha / (vsqrt(vi) + eps), w, i, n)
            }
        }
    }

    /// Resets every slot to zero (a fresh run).
    public func reset() { for s in slots { s.fill(0) } }
}

/// Calls body(start, lanes) for each vector of `range`; the last may be partial (lanes < vecLanes).
@inline(__always)
func forEachVector(_ range: Range<Int>, _ body: (Int, Int) -> Void) {
    var i = range.lowerBound
    while i < range.upperBound {
        let n = min(vecLanes, range.upperBound - i)
        body(i, n)
        i += n
    }
}

@inline(__always) func load(_ p: UnsafePointer<Float>, _ i: Int, _ n: Int) -> Vec {
    if n == vecLanes { return UnsafeRawPointer(p + i).loadUnaligned(as: Vec.self) }
    var v = Vec()
    for l in 0..<n { v[l] = p[i + l] }
    return v
}
@inline(__always) func load(_ p: UnsafeMutablePointer<Float>, _ i: Int, _ n: Int) -> Vec { load(UnsafePointer(p), i, n) }
@inline(__always) func storeN(_ v: Vec, _ p: UnsafeMutablePointer<Float>, _ i: Int, _ n: Int) {
    if n == vecLanes { UnsafeMutableRawPointer(p + i).storeBytes(of: v, as: Vec.self); return }
    for l in 0..<n { p[i + l] = v[l] }
}
