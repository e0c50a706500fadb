import Foundation
import LoomKernels
import LoomNN
import Testing

/// Weight decay and gradient clipping against values computed by hand for two steps (Keras 3's order: clip the
/// gradient, w −= w·wd·lr, then the optimizer's update).
@Suite("Weight decay and clipping")
struct RegularizationTests {
    func run(_ o: Optimizer, w: [Float], g: [Float], steps: Int = 2) -> [Float] {
        var w = w
        var g = g
        w.withUnsafeMutableBufferPointer { wp in
            g.withUnsafeMutableBufferPointer { gp in
                for t in 1...steps {
                    o.update(0..<wp.count, parameters: wp.baseAddress!, gradients: gp.baseAddress!, step: t)
                }
            }
        }
        return w
    }

    @Test("sgd with weight_decay: w ← w − w·wd·lr − lr·g, twice")
    func sgdDecay() {
        let o = Optimizer(.sgd(learningRate: 0.1), parameterCount: 3)
        o.weightDecay = 0.5
        var expected: [Double] = [1, -2, 0.5]
        let g: [Double] = [0.2, -0.4, 1]
        for _ in 0..<2 { expected = zip(expected, g).map { w, g in w - w * 0.5 * 0.1 - 0.1 * g } }
        let got = run(o, w: [1, -2, 0.5], g: [0.2, -0.4, 1])
        for (a, b) in zip(got, expected) { #expect(abs(Double(a) - b) < 1e-6, "\(got) vs \(expected)") }
    }

    @Test("adamw: Adam's step on the decayed weights (default decay 0.004 in the config)")
    func adamw() {
        let o = Optimizer(.adamw(learningRate: 0.01), parameterCount: 2)
        o.weightDecay = 0.004
        var w: [Double] = [1, -1]
        let g: [Double] = [0.5, -0.25]
        var m: [Double] = [0, 0]
        var v: [Double] = [0, 0]
        for t in 1...2 {
            let alpha = 0.01 * (1 - pow(0.999, Double(t))).squareRoot() / (1 - pow(0.9, Double(t)))
            for i in 0..<2 {
                w[i] -= w[i] * 0.004 * 0.01
                m[i] += (g[i] - m[i]) * (1 - 0.9)
                v[i] += (g[i] * g[i] - v[i]) * (1 - 0.999)
                w[i] -= m[i] * alpha / (v[i].squareRoot() + 1e-7)
            }
        }
        let got = run(o, w: [1, -1], g: [0.5, -0.25])
        for (a, b) in zip(got, w) { #expect(abs(Double(a) - b) < 1e-6, "\(got) vs \(w)") }
    }

    @Test("clipvalue clips each gradient before the update; zero decay and no clipping change nothing")
    func clipping() {
        let o = Optimizer(.sgd(learningRate: 0.1), parameterCount: 4)
        o.clipping = .value(0.5)
        let got = run(o, w: [0, 0, 0, 0], g: [2, -3, 0.25, -0.5])
        #expect(zip(got, [-0.1, 0.1, -0.05, 0.1]).allSatisfy { abs($0 - Float($1)) < 1e-7 }, "\(got)")
        let plain = run(Optimizer(.rmsprop(), parameterCount: 3), w: [1, 2, 3], g: [0.1, 0.2, 0.3])
        let zeroed = Optimizer(.rmsprop(), parameterCount: 3)
        zeroed.weightDecay = 0
        zeroed.clipping = .none
        #expect(run(zeroed, w: [1, 2, 3], g: [0.1, 0.2, 0.3]) == plain)
    }

    @Test("l1 and l2 penalties: g + l1·sign(w) + 2·l2·w before the step (sign(0) = 0), twice with momentum")
    func penaltyGradient() {
        let o = Optimizer(.sgd(learningRate: 0.1, momentum: 0.9), parameterCount: 4)
        var w: [Float] = [1, -2, 0, 0.5]
        var g: [Float] = [0.2, -0.4, 1, 0]
        var expected = w.map(Double.init)
        var v = [0.0, 0, 0, 0]
        for _ in 0..<2 {
            for i in 0..<4 {
                let wi = expected[i]
                let gi = Double(g[i]) + 0.01 * (wi > 0 ? 1 : wi < 0 ? -1 : 0) + 2 * 0.05 * wi
                v[i] = 0.9 * v[i] - 0.1 * gi
                expected[i] += v[i]
            }
        }
        w.withUnsafeMutableBufferPointer { wp in
            g.withUnsafeMutableBufferPointer { gp in
                for t in 1...2 {
                    // The penalty's gradient is added into the gradient buffer: a new step, a new gradient.
                    for (i, v) in [Float(0.2), -0.4, 1, 0].enumerated() { gp[i] = v }
                    let rule = o.rule(step: t, parameters: wp.baseAddress!, gradients: gp.baseAddress!)
                    applyUpdate(rule.regularized(Regularizer(l1: 0.01, l2: 0.05)), 0..<4)
                }
            }
        }
        for (a, b) in zip(w, expected) { #expect(abs(Double(a) - b) < 1e-6, "\(w) vs \(expected)") }
        #expect(Regularizer(l1: 0.5, l2: 2).penalty(absSum: 3, squareSum: 4) == 9.5)
    }

    @Test("clipnorm scales a variable by c/‖g‖ only above c; global_clipnorm uses the norm of all gradients")
    func normScales() {
        #expect(GradientClipping.norm(1).scale(squares: 4, globalSquares: 100) == 0.5)
        #expect(GradientClipping.norm(3).scale(squares: 4, globalSquares: 100) == 1)
        #expect(GradientClipping.globalNorm(2).scale(squares: 4, globalSquares: 16) == 0.5)
        #expect(GradientClipping.globalNorm(5).scale(squares: 4, globalSquares: 16) == 1)
        #expect(GradientClipping.value(1).scale(squares: 400, globalSquares: 400) == 1)
        #expect(GradientClipping.norm(1).needsNorms && GradientClipping.globalNorm(1).needsNorms)
        #expect(!GradientClipping.value(1).needsNorms && !GradientClipping.none.needsNorms)
    }
}
