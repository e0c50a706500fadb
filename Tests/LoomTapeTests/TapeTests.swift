import Foundation
import LoomKernels
import LoomNN
import Testing

@testable import LoomTape

/// A seeded generator of floats in [-1, 1).
struct Values {
    var state: UInt64
    mutating func next(_ n: Int, positive: Bool = false) -> [Float] {
        (0..<n).map { _ in
            state = state &* 6_364_136_223_846_793_005 &+ 1_442_695_040_888_963_407
            let u = Float(state >> 40) / Float(1 << 24)
            return positive ? 0.5 + u : 2 * u - 1
        }
    }
}

/// Checks the tape's gradient of Σ f(inputs) ⊙ R (R fixed random weights, so every output matters differently)
/// against central finite differences, for every value of every input.
/// Values within 0.05 of a `kink` (where f has no derivative: relu's 0, clip's bounds) are moved 0.1 away, so
/// the finite difference does not straddle it.
func checkGradient(
    _ shapes: [Shape], positive: Bool = false, seed: UInt64 = 1, kinks: [Float] = [],
    sourceLocation: SourceLocation = #_sourceLocation, _ f: ([Tensor]) throws -> Tensor
) throws {
    var rng = Values(state: seed)
    let inputs = try shapes.enumerated().map { i, shape in
        let values = rng.next(shape.count, positive: positive).map { v in
            kinks.contains { abs(v - $0) < 0.05 } ? v + 0.1 : v
        }
        return try Variable(values, shape: shape, name: "x\(i)")
    }
    let tape = GradientTape(persistent: true)
    /// The loss at the variables' current values, on a fresh recording.
    func loss() throws -> (Tensor, [Float]) {
        tape.reset()
        return try tape.record {
            let y = try f(inputs.map { try $0.value })
            var r = Values(state: 99)
            let weights = try tape.constant(r.next(y.shape.count), shape: y.shape)
            return (try (y * weights).sum(), [])
        }
    }
    let (l, _) = try loss()
    let analytic = try tape.gradient(of: l, withRespectTo: inputs).map(\.scalars)
    let h: Float = 1e-2
    for (v, input) in inputs.enumerated() {
        for i in 0..<input.shape.count {
            let saved = input.buffer.pointer[i]
            input.buffer.pointer[i] = saved + h
            let plus = Double(try loss().0.scalar)
            input.buffer.pointer[i] = saved - h
            let minus = Double(try loss().0.scalar)
            input.buffer.pointer[i] = saved
            let numeric = (plus - minus) / Double(2 * h)
            let a = Double(analytic[v][i])
            #expect(
                abs(numeric - a) <= 2e-3 + 1e-2 * max(abs(a), abs(numeric)),
                "input \(v)[\(i)]: tape \(a), finite difference \(numeric)", sourceLocation: sourceLocation)
        }
    }
}

@Suite("GradientTape: every operation's gradient against central finite differences")
struct TapeGradientTests {
    @Test("matmul") func matmul() throws { try checkGradient([[3, 4], [4, 2]]) { try $0[0].matmul($0[1]) } }

    @Test("+, −, ⊙ on equal shapes, a bias row, a column, a scalar, and two ways at once (3×1 with 1×4)")
    func broadcasting() throws {
        let pairs: [(Shape, Shape)] = [
            ([2, 3], [2, 3]), ([2, 3], [3]), ([2, 3], [2, 1]), ([2, 3], []), ([3, 1], [1, 4]),
        ]
        for (a, b) in pairs {
            try checkGradient([a, b]) { try $0[0] + $0[1] }
            try checkGradient([a, b]) { try $0[0] - $0[1] }
            try checkGradient([a, b]) { try $0[0] * $0[1] }
            try checkGradient([b, a]) { try $0[0] * $0[1] }
        }
    }

    @Test("scale, relu, sigmoid, tanh, exp, log, clip, softmax")
    func unary() throws {
        try checkGradient([[2, 3]]) { try $0[0] * 2.5 }
        try checkGradient([[2, 3]]) { try -$0[0] / 4 }
        try checkGradient([[2, 3]], kinks: [0]) { try $0[0].relu() }
        try checkGradient([[2, 3]]) { try $0[0].sigmoid() }
        try checkGradient([[2, 3]]) { try $0[0].tanh() }
        try checkGradient([[2, 3]]) { try $0[0].exp() }
        try checkGradient([[2, 3]], positive: true) { try $0[0].log() }
        try checkGradient([[2, 3]], kinks: [-0.5, 0.5]) { try $0[0].clip(-0.5, 0.5) }
        try checkGradient([[3, 4]]) { try $0[0].softmax() }
    }

    @Test("sum and mean over each axis and over everything; reshape; pick")
    func reductions() throws {
        for axis: Int? in [nil, 0, 1, 2] {
            try checkGradient([[2, 3, 2]]) { try $0[0].sum(axis: axis) }
            try checkGradient([[2, 3, 2]]) { try $0[0].mean(axis: axis) }
        }
        try checkGradient([[2, 6]]) { try $0[0].reshaped([3, 4]).softmax() }
        let labels: [Int32] = [2, 0, 3]
        try labels.withUnsafeBufferPointer { l in try checkGradient([[3, 4]]) { try $0[0].softmax().pick(l) } }
    }

    @Test("a two-layer network and Keras' cross-entropy from probabilities, composed")
    func network() throws {
        let labels: [Int32] = [1, 0, 2, 2]
        try labels.withUnsafeBufferPointer { l in
            try checkGradient([[4, 5], [5, 6], [6], [6, 3], [3]]) { v in
                let h = try (v[0].matmul(v[1]) + v[2]).tanh()
                return try sparseCategoricalCrossentropy(probabilities: (h.matmul(v[3]) + v[4]).softmax(), labels: l)
            }
        }
    }
}

@Suite("GradientTape: against the built-in layers, reuse and misuse")
struct TapeBehaviourTests {
    @Test(
        "a dense layer on the tape gives the built-in Dense's gradients within 1e-6 relative (the same GEMMs; the loss's 2·d/(B·C) is rounded in another order)"
    )
    func denseMatchesBuiltIn() throws {
        var rng = Values(state: 5)
        let (batch, inputs, units) = (6, 7, 5)
        let x = rng.next(batch * inputs)
        let t = rng.next(batch * units)
        // The built-in layer: Dense(relu) under mean_squared_error on real-valued targets.
        let dense = Dense(units: units, activation: .relu)
        let model = Sequential(inputWidth: inputs, layers: [dense], loss: .meanSquaredError)
        model.initialize(seed: 3)
        let buffers = ActivationBuffers(model: model, capacity: batch)
        let workspace = GemmWorkspace()
        x.withUnsafeBufferPointer { buffers.input.update(from: $0.baseAddress!, count: x.count) }
        let labels = [Int32](repeating: 0, count: batch)
        labels.withUnsafeBufferPointer { l in
            t.withUnsafeBufferPointer { tv in
                let pass = Pass(training: true)
                model.forward(buffers, rows: 0..<batch, pass: pass, workspace: workspace)
                model.lossAndGradient(
                    buffers, rows: 0..<batch,
                    targets: Targets(labels: l.baseAddress!, values: tv.baseAddress!, width: units),
                    batchSize: batch, gradient: true)
                model.backward(buffers, rows: 0..<batch, pass: pass, workspace: workspace)
                model.parameterGradients(buffers, batchSize: batch, part: 0, of: 1, workspace: workspace)
            }
        }
        let builtIn = model.gradients.array
        // The same layer on the tape, from the same weights.
        let w = try Variable(Array(model.parameters.array[0..<inputs * units]), shape: [inputs, units], name: "kernel")
        let b = try Variable(Array(model.parameters.array[inputs * units..<(inputs + 1) * units]), shape: [units])
        let tape = GradientTape()
        let loss = try tape.record {
            let z = try (tape.constant(x, shape: [batch, inputs]).matmul(w.value) + b.value).relu()
            let d = try z - tape.constant(t, shape: [batch, units])
            return try (d * d).mean()
        }
        let grads = try tape.gradient(of: loss, withRespectTo: [w, b])
        let taped = grads[0].scalars + grads[1].scalars
        #expect(taped.count == builtIn.count)
        for (i, (a, e)) in zip(taped, builtIn).enumerated() {
            #expect(abs(a - e) <= 1e-6 * max(1, abs(e)), "parameter \(i): tape \(a), Dense \(e)")
        }
    }

    @Test("a step repeated on a reset tape allocates no new buffers; tensors of an earlier recording are refused")
    func arenaReuse() throws {
        let w = try Variable([Float](repeating: 0.1, count: 12), shape: [4, 3])
        let x = [Float](repeating: 1, count: 8)
        let tape = GradientTape()
        var old: Tensor?
        var allocations: [Int] = []
        for _ in 0..<4 {
            tape.reset()
            let loss = try tape.record {
                let y = try x.withUnsafeBufferPointer { p in
                    try tape.constant(wrapping: UnsafeMutablePointer(mutating: p.baseAddress!), shape: [2, 4]).matmul(
                        w.value)
                }
                old = y
                return try y.tanh().sum()
            }
            _ = try tape.gradient(of: loss, withRespectTo: [w])
            allocations.append(tape.allocations)
        }
        #expect(allocations.dropFirst().allSatisfy { $0 == allocations[0] }, "\(allocations)")
        tape.reset()
        #expect(throws: TapeError.self) { try tape.record { try old!.relu() } }
    }

    @Test("misuse is a thrown error with one clear line")
    func misuse() throws {
        let tape = GradientTape()
        let other = GradientTape()
        let fresh0 = GradientTape()
        let w = try Variable([1, 2, 3, 4], shape: [2, 2], name: "w")
        let unused = try Variable([1], shape: [1], name: "unused")
        func expectError(_ expected: String, _ body: () throws -> Void) {
            do {
                try body()
                Issue.record("no error for: \(expected)")
            } catch {
                #expect("\(error)".contains(expected) && !"\(error)".contains("\n"), "\(error)")
            }
        }
        expectError("outside a tape") { _ = try w.value }
        expectError("matmul needs (m, k) · (k, n), got (2, 2) · (3, 1)") {
            try tape.record { _ = try w.value.matmul(tape.constant([1, 2, 3], shape: [3, 1])) }
        }
        expectError("shapes (2, 2) and (3,) do not broadcast") {
            try tape.record { _ = try w.value + tape.constant([1, 2, 3], shape: [3]) }
        }
        expectError("axis 2 is outside the 2 axes") { try tape.record { _ = try w.value.sum(axis: 2) } }
        expectError("label 5 (row 1) is outside the 2 columns") {
            let labels: [Int32] = [0, 5]
            try tape.record { _ = try labels.withUnsafeBufferPointer { try w.value.pick($0) } }
        }
        let loss = try tape.record { try w.value.sum() }
        expectError("variable 'unused' was not read inside this tape's record") {
            _ = try tape.gradient(of: loss, withRespectTo: [unused])
        }
        let c = try tape.record { try tape.constant([1, 2], shape: [2]) }
        expectError("is not watched: call tape.watch(x)") { _ = try tape.gradient(of: loss, withRespectTo: [c]) }
        _ = try tape.gradient(of: loss, withRespectTo: [w])
        expectError("a non-persistent tape gives one set of gradients") {
            _ = try tape.gradient(of: loss, withRespectTo: [w])
        }
        expectError("a tensor of another tape") { try other.record { _ = try loss.relu() } }
        expectError("shape [1, 2, 3, 4, 5]: tensors have up to 4 dimensions") {
            _ = try tape.constant([1], shape: [1, 2, 3, 4, 5])
        }
        expectError("shape [2, -1]: tensors have up to 4 dimensions, each 0 or more") {
            _ = try Variable([1, 2], shape: [2, -1])
        }
        expectError("variable 'w': 3 values cannot fill shape (2, 2)") {
            _ = try Variable([1, 2, 3], shape: [2, 2], name: "w")
        }
        expectError("cannot be updated with a tensor of shape (1,)") {
            let g = try fresh0.record { try fresh0.constant([1], shape: [1]) }
            try w.update(with: g) { a, b in a - b }
        }
        // A watched constant has a gradient.
        let fresh = GradientTape()
        let (y, x) = try fresh.record {
            let x = try fresh.watch(fresh.constant([1, 2, 3], shape: [3]))
            return (try (x * x).sum(), x)
        }
        #expect(try fresh.gradient(of: y, withRespectTo: [x])[0].scalars == [2, 4, 6])
    }
}
