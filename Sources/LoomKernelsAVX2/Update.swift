// Parameter updates, as Keras 3 writes them (g: the batch-mean gradient, t: the 1-based step):
//   sgd          w −= lr·g
//   momentum     v = m·v − lr·g;  w += v          (nesterov: w += m·v − lr·g)
//   rmsprop      a = ρ·a + (1−ρ)·g²;  w −= lr·g / √(a + ε)        (ε inside the root)
//                momentum m: v = m·v + lr·g/√(a + ε); w −= v;  centered: ḡ = ρ·ḡ + (1−ρ)·g, root √(a − ḡ² + ε)
//   adam         m += (g − m)(1−β₁);  v += (g² − v)(1−β₂);  w −= α·m/(√v + ε),  α = lr·√(1−β₂ᵗ)/(1−β₁ᵗ)
// Before any rule: g += l1·sign(w) + 2·l2·w (regularizers), g *= scale (clipnorm), g = clamp(g) (clipvalue),
// w −= w·wd·lr (decoupled weight decay).
// One vector of arithmetic (`apply`), run by a streaming loop over a parameter range that is specialized per
// rule (the switch is hoisted out of the loop, so consecutive vectors' sqrt/divide chains overlap). Lanes past
// a range's end are zero-filled: the result never depends on where a worker's range begins or ends.

import LoomKernelTypes

extension UpdateRule {
    /// Updates parameters i..<i+lanes given their gradient vector g (lanes ≤ vecLanes), with the rule `kind`
    /// (a constant at every call site, so the switch folds away).
    @inline(__always)
    func apply(_ kind: Kind, _ gradient: Vec, at i: Int, lanes n: Int) {
        let w = parameters + i
        let lr = learningRate
        var w0 = loadLanes(w, n)
        var g = gradient
        // Keras' order: the penalty's gradient has joined the loss's (`updateLoop`), the sum is clipped, the
        // weights decay, then the step.
        if gradientScale != 1 { g = g * gradientScale }
        if clipValue != 0 {
            // Masked selects, not `clamped` or `pointwiseMin`/`Max`: those compile lane by lane here (epochs
            // 1.7-2.5× slower with clipvalue).
            let (lo, hi) = (Vec(repeating: -clipValue), Vec(repeating: clipValue))
            g = g.replacing(with: hi, where: g .> hi).replacing(with: lo, where: g .< lo)
        }
        // The parameter as the rule sees it: after decoupled weight decay (w − w·wd·lr).
        if weightDecay != 0 { w0 = w0 - w0 * weightDecay * lr }
        switch kind {
        case .sgd:
            storeLanes(w0 - g * lr, w, n)
        case .momentum, .nesterov:
            let v = slot0 + i
            let vi = loadLanes(v, n) * a - g * lr
            storeLanes(vi, v, n)
            storeLanes(w0 + (kind == .nesterov ? vi * a - g * lr : vi), w, n)
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
                storeLanes(w0 - vi, w, n)
            } else {
                storeLanes(w0 - increment, w, n)
            }
        case .adam:
            let mp = slot0 + i
            let vp = slot1 + i
            var mi = loadLanes(mp, n)
            mi += (g - mi) * (1 - a)
            var vi = loadLanes(vp, n)
            vi += (g * g - vi) * (1 - b)
            storeLanes(mi, mp, n)
            storeLanes(vi, vp, n)
            storeLanes(w0 - mi * alpha / (vsqrt(vi) + epsilon), w, n)
        }
    }
}

/// Applies `rule` to parameters `range`, reading their gradients from `rule.gradients` (with a regularizer, the
/// penalty's gradient is added to them in place first).
public func applyUpdate(_ rule: UpdateRule, _ range: Range<Int>) {
    switch rule.kind {
    case .sgd: updateLoop(rule, range, .sgd)
    case .momentum: updateLoop(rule, range, .momentum)
    case .nesterov: updateLoop(rule, range, .nesterov)
    case .rmsprop: updateLoop(rule, range, .rmsprop)
    case .rmspropMomentum: updateLoop(rule, range, .rmspropMomentum)
    case .rmspropCentered: updateLoop(rule, range, .rmspropCentered)
    case .rmspropCenteredMomentum: updateLoop(rule, range, .rmspropCenteredMomentum)
    case .adam: updateLoop(rule, range, .adam)
    }
}

@inline(__always)
func updateLoop(_ rule: UpdateRule, _ range: Range<Int>, _ kind: UpdateRule.Kind) {
    if rule.l1 != 0 || rule.l2 != 0 { addPenaltyGradient(rule, range) }
    var i = range.lowerBound
    let full = range.lowerBound + range.count / vecLanes * vecLanes
    while i < full {
        rule.apply(kind, loadVec(rule.gradients + i), at: i, lanes: vecLanes)
        i += vecLanes
    }
    if i < range.upperBound {
        let n = range.upperBound - i
        rule.apply(kind, loadPartial(rule.gradients + i, n), at: i, lanes: n)
    }
}

/// Loads n ≤ lanes floats (a full vector when n = lanes), zero-filling the rest.
@inline(__always) func loadLanes(_ p: UnsafeMutablePointer<Float>, _ n: Int) -> Vec {
    n == vecLanes ? loadVec(p) : loadPartial(p, n)
}
@inline(__always) func storeLanes(_ v: Vec, _ p: UnsafeMutablePointer<Float>, _ n: Int) {
    if n == vecLanes { storeVec(v, p) } else { storePartial(v, p, n) }
}

/// g += l1·sign(w) + 2·l2·w over `range`, in place: the regularizers' gradient joins the loss's before the rule
/// (a pass of its own: inside `apply` it kept the compiler from keeping the rule's loop in registers).
func addPenaltyGradient(_ rule: UpdateRule, _ range: Range<Int>) {
    var i = range.lowerBound
    while i < range.upperBound {
        let n = min(vecLanes, range.upperBound - i)
        let g = penalized(loadLanes(rule.gradients + i, n), loadLanes(rule.parameters + i, n), l1: rule.l1, l2: rule.l2)
        storeLanes(g, rule.gradients + i, n)
        i += n
    }
}
