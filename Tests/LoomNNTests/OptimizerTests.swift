import Foundation
import LoomKernels
import LoomNN
import Testing

/// Three steps of an optimizer on a few parameters with fixed gradients, against the formulas written out in
/// Double here (Keras 3's update rules, as the optimizer's doc comment states them).
func runSteps(_ spec: OptimizerSpec, w0: [Float], grads: [[Float]]) -> [Float] {
    let n = w0.count
    let opt = Optimizer(spec, parameterCount: n)
    let w = AlignedBuffer(count: n)
    let g = AlignedBuffer(count: n)
    for i in 0..<n { w.pointer[i] = w0[i] }
    for (t, step) in grads.enumerated() {
        for i in 0..<n { g.pointer[i] = step[i] }
        // Two ranges, as two workers would split it.
        opt.update(0..<n / 2, parameters: w.pointer, gradients: g.pointer, step: t + 1)
        opt.update(n / 2..<n, parameters: w.pointer, gradients: g.pointer, step: t + 1)
    }
    return w.array
}

func expectClose(_ a: [Float], _ b: [Double], _ what: String) {
    #expect(a.count == b.count)
    for (x, y) in zip(a, b) {
        #expect(abs(Double(x) - y) <= 1e-6 * max(1, abs(y)), "\(what): got \(x), expected \(y)")
    }
}

// 19 parameters: more than two vectors, with a partial tail, split unevenly.
let w0: [Float] = (0..<19).map { Float($0) * 0.1 - 0.9 }
let gradients: [[Float]] = (1...3).map { t in (0..<19).map { Float(sin(Double($0 * t) + 0.3)) * 0.5 } }

@Suite("Optimizers: three steps against hand-computed updates")
struct OptimizerTests {
    @Test func sgdPlain() {
        var w = w0.map(Double.init)
        for g in gradients { for i in w.indices { w[i] -= 0.1 * Double(g[i]) } }
        expectClose(runSteps(.sgd(learningRate: 0.1), w0: w0, grads: gradients), w, "sgd")
    }

    @Test(arguments: [false, true])
    func sgdMomentum(nesterov: Bool) {
        var w = w0.map(Double.init)
        var v = [Double](repeating: 0, count: 19)
        let lr = 0.05
        let m = 0.9
        for g in gradients {
            for i in w.indices {
                v[i] = m * v[i] - lr * Double(g[i])
                w[i] += nesterov ? m * v[i] - lr * Double(g[i]) : v[i]
            }
        }
        expectClose(
            runSteps(.sgd(learningRate: 0.05, momentum: 0.9, nesterov: nesterov), w0: w0, grads: gradients), w,
            "sgd momentum nesterov=\(nesterov)")
    }

    @Test(arguments: [(0.0, false), (0.9, false), (0.0, true), (0.5, true)])
    func rmsprop(momentum: Double, centered: Bool) {
        var w = w0.map(Double.init)
        var a = [Double](repeating: 0, count: 19)
        var v = a
        var gbar = a
        let lr = 0.01
        let rho = 0.9
        let eps = 1e-7
        for g in gradients {
            for i in w.indices {
                let gi = Double(g[i])
                a[i] = rho * a[i] + (1 - rho) * gi * gi
                var denominator = a[i] + eps
                if centered {
                    gbar[i] = rho * gbar[i] + (1 - rho) * gi
                    denominator = a[i] - gbar[i] * gbar[i] + eps
                }
                let increment = lr * gi / denominator.squareRoot()
                if momentum > 0 {
                    v[i] = momentum * v[i] + increment
                    w[i] -= v[i]
                } else {
                    w[i] -= increment
                }
            }
        }
        let spec = OptimizerSpec.rmsprop(
            learningRate: 0.01, rho: 0.9, epsilon: 1e-7, momentum: Float(momentum), centered: centered)
        expectClose(runSteps(spec, w0: w0, grads: gradients), w, "rmsprop m=\(momentum) centered=\(centered)")
    }

    @Test func adam() {
        var w = w0.map(Double.init)
        var m = [Double](repeating: 0, count: 19)
        var v = m
        let lr = 0.01
        let b1 = 0.9
        let b2 = 0.999
        let eps = 1e-7
        for (s, g) in gradients.enumerated() {
            let t = Double(s + 1)
            let alpha = lr * (1 - pow(b2, t)).squareRoot() / (1 - pow(b1, t))
            for i in w.indices {
                let gi = Double(g[i])
                m[i] += (gi - m[i]) * (1 - b1)
                v[i] += (gi * gi - v[i]) * (1 - b2)
                w[i] -= alpha * m[i] / (v[i].squareRoot() + eps)
            }
        }
        expectClose(runSteps(.adam(learningRate: 0.01), w0: w0, grads: gradients), w, "adam")
    }

    @Test("Keras 3 defaults")
    func defaults() {
        #expect(OptimizerSpec.sgd() == .sgd(learningRate: 0.01, momentum: 0, nesterov: false))
        #expect(
            OptimizerSpec.rmsprop()
                == .rmsprop(learningRate: 0.001, rho: 0.9, epsilon: 1e-7, momentum: 0, centered: false))
        #expect(OptimizerSpec.adam() == .adam(learningRate: 0.001, beta1: 0.9, beta2: 0.999, epsilon: 1e-7))
    }

    @Test("the first RMSprop step moves every weight by about lr/sqrt(1 - rho)")
    func rmspropFirstStepByHand() {
        // a = 0.1·g², so the step is lr·g/sqrt(0.1·g² + 1e-7) ≈ lr/sqrt(0.1) = 0.0031623 for |g| ≫ 1e-3.
        let w = runSteps(.rmsprop(), w0: [1, 1], grads: [[0.5, -2]])
        #expect(abs(Double(w[0]) - (1 - 0.001 * 0.5 / (0.1 * 0.25 + 1e-7).squareRoot())) < 1e-7)
        #expect(abs(Double(w[1]) - (1 + 0.001 * 2 / (0.1 * 4 + 1e-7).squareRoot())) < 1e-7)
    }
}

@Suite("Model pieces")
struct ModelTests {
    @Test("the reference model has 407,050 parameters and a Keras-style summary")
    func summary() {
        let model = Sequential(
            inputWidth: 784, layers: [Dense(units: 512, activation: .relu), Dense(units: 10, activation: .softmax)],
            loss: .sparseCategoricalCrossentropy)
        #expect(model.parameterCount == 407_050)
        let s = model.summary()
        #expect(s.contains("407,050"))
        #expect(s.contains("(None, 512)") && s.contains("401,920") && s.contains("5,130"))
        #expect(
            model.namedParameters.map(\.name) == [
                "layers.0.kernel", "layers.0.bias", "layers.1.kernel", "layers.1.bias",
            ])
        #expect(model.namedParameters[0].shape == [784, 512])
    }

    @Test("initializers: ranges and spreads as Keras defines them")
    func initializers() {
        var rng = Random(seed: 5)
        let n = 20000
        let buf = AlignedBuffer(count: n)
        Initializer.glorotUniform.fill(buf.pointer, count: n, fanIn: 784, fanOut: 512, rng: &rng)
        let limit = Float((6.0 / 1296).squareRoot())
        #expect(buf.array.allSatisfy { abs($0) <= limit })
        #expect(buf.array.max()! > limit * 0.99)
        for (ini, std) in [
            (Initializer.heNormal, (2.0 / 100).squareRoot()), (.glorotNormal, (2.0 / 300).squareRoot()),
            (.lecunNormal, (1.0 / 100).squareRoot()),
        ] {
            ini.fill(buf.pointer, count: n, fanIn: 100, fanOut: 200, rng: &rng)
            let xs = buf.array.map(Double.init)
            let sd = (xs.map { $0 * $0 }.reduce(0, +) / Double(n)).squareRoot()
            #expect(abs(sd - std) < 0.05 * std, "\(ini): stddev \(sd), expected \(std)")
            #expect(xs.allSatisfy { abs($0) <= 2 * std / 0.87962566103423978 + 1e-6 }, "\(ini) is truncated at 2σ")
        }
        Initializer.randomUniform(min: 2, max: 3).fill(buf.pointer, count: n, fanIn: 1, fanOut: 1, rng: &rng)
        #expect(buf.array.allSatisfy { $0 >= 2 && $0 <= 3 })
        Initializer.ones.fill(buf.pointer, count: n, fanIn: 1, fanOut: 1, rng: &rng)
        #expect(buf.array.allSatisfy { $0 == 1 })
    }

    @Test("SHA-256 known answers")
    func sha256() {
        func hex(_ s: String) -> String { Array(s.utf8).withUnsafeBytes { SHA256.hex($0) } }
        #expect(hex("") == "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855")
        #expect(hex("abc") == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad")
        #expect(
            hex(String(repeating: "a", count: 1000))
                == "41edece42d63e8d9bf515a9ba6932e1c20cbc9f5a5d134645adb5db1b9737ea3")
    }

    @Test("vexp against exp (the active kernel build's vectors)")
    func vexpAccuracy() {
        let x = stride(from: -90.0, to: 90.0, by: 0.0037).map { Float($0) }
        let e = expValues(x)
        for (v, got) in zip(x, e) {
            let want = Float(exp(Double(v)))
            if want.isInfinite {
                #expect(got.isInfinite)
                continue
            }
            #expect(abs(got - want) <= 3 * want.ulp + Float.leastNormalMagnitude, "exp(\(v)): \(got) vs \(want)")
        }
    }
}
