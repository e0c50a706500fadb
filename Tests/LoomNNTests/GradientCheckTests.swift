import LoomKernels
import Testing

@testable import LoomNN

/// A batch's targets as arrays: class labels, or real values (`width` per row), and optional weights.
struct TestTargets {
    var labels: [Int32]
    var values: [Float]? = nil
    var width = 0
    var weights: [Float]? = nil

    /// Calls `body` with the `Targets` view of these arrays.
    func with<R>(_ body: (Targets) -> R) -> R {
        labels.withUnsafeBufferPointer { l in
            (values ?? [0]).withUnsafeBufferPointer { v in
                (weights ?? [0]).withUnsafeBufferPointer { w in
                    body(
                        Targets(
                            labels: l.baseAddress!, values: values == nil ? nil : v.baseAddress!, width: width,
                            weights: weights == nil ? nil : w.baseAddress!))
                }
            }
        }
    }
}

/// Runs one full batch through the model the way a single worker does and returns the mean loss; with
/// `gradients`, also leaves ∂L/∂θ in `model.gradients` (parameter gradients computed as one part, no update).
func batchLoss(
    _ model: Sequential, _ buffers: ActivationBuffers, x: [Float], labels: [Int32], gradients: Bool,
    pass: Pass = Pass(training: true, seed: 3, step: 1)
) -> Double {
    batchLoss(model, buffers, x: x, targets: TestTargets(labels: labels), gradients: gradients, pass: pass)
}

func batchLoss(
    _ model: Sequential, _ buffers: ActivationBuffers, x: [Float], targets: TestTargets, gradients: Bool,
    pass: Pass = Pass(training: true, seed: 3, step: 1)
) -> Double {
    let n = targets.labels.count
    let ws = GemmWorkspace()
    x.withUnsafeBufferPointer { buffers.input.update(from: $0.baseAddress!, count: x.count) }
    targets.with { t in
        model.forward(buffers, rows: 0..<n, pass: pass, workspace: ws)
        model.lossAndGradient(buffers, rows: 0..<n, targets: t, batchSize: n, gradient: gradients)
        if gradients {
            model.backward(buffers, rows: 0..<n, pass: pass, workspace: ws)
            model.parameterGradients(buffers, batchSize: n, part: 0, of: 1, workspace: ws)
        }
    }
    var sum = 0.0
    for i in 0..<n { sum += Double(buffers.rowLoss[i]) }
    return sum / Double(n)
}

/// What a gradient check's targets look like.
enum TargetStyle {
    case labels
    /// Real values drawn from N(0, 1) (regression), or rows of probabilities (soft class targets).
    case values
    case probabilities
}

/// Central finite differences of the loss against every parameter (or a sample of them) vs backprop.
func gradientCheck(
    _ layers: [any Layer], inputs: Int, loss: Loss, classes: Int, rows: Int = 5, seed: UInt64 = 1,
    positiveInputs: Bool = false, options: LossOptions = LossOptions(), targets style: TargetStyle = .labels,
    weighted: Bool = false
) {
    let model = Sequential(inputWidth: inputs, layers: layers, loss: loss, lossOptions: options)
    model.initialize(seed: seed)
    var rng = Random(seed: seed + 100)
    // Keep biases non-zero so every path is exercised.
    for i in 0..<model.parameterCount { model.parameters.pointer[i] += Float(rng.nextNormal() * 0.1) }
    let buffers = ActivationBuffers(model: model, capacity: rows)
    let x = (0..<rows * inputs).map { _ in positiveInputs ? rng.nextUniform() : Float(rng.nextNormal()) }
    var targets = TestTargets(labels: (0..<rows).map { _ in Int32(rng.next() % UInt64(classes)) })
    let width = model.outputWidth
    switch style {
    case .labels: break
    case .values:
        targets.values = (0..<rows * width).map { _ in Float(rng.nextNormal()) }
        targets.width = width
    case .probabilities:
        var values: [Float] = []
        for _ in 0..<rows {
            let raw = (0..<width).map { _ in rng.nextUniform() + 0.05 }
            let total = raw.reduce(0, +)
            values += width == 1 ? [raw[0] / (raw[0] + 0.3)] : raw.map { $0 / total }
        }
        targets.values = values
        targets.width = width
    }
    if weighted { targets.weights = (0..<rows).map { _ in rng.nextUniform() * 2 } }
    _ = batchLoss(model, buffers, x: x, targets: targets, gradients: true)
    let analytic = model.gradients.array
    let h: Float = 1e-3
    let count = model.parameterCount
    let step = max(1, count / 60)
    var checked = 0
    for i in stride(from: 0, to: count, by: step) {
        let p = model.parameters.pointer + i
        let saved = p.pointee
        p.pointee = saved + h
        let plus = batchLoss(model, buffers, x: x, targets: targets, gradients: false)
        p.pointee = saved - h
        let minus = batchLoss(model, buffers, x: x, targets: targets, gradients: false)
        p.pointee = saved
        let numeric = (plus - minus) / Double(2 * h)
        let a = Double(analytic[i])
        #expect(
            abs(numeric - a) <= 2e-3 + 2e-2 * max(abs(numeric), abs(a)),
            "parameter \(i): backprop \(a), finite difference \(numeric)")
        checked += 1
    }
    #expect(checked > 0)
}

@Suite("Gradient checks: backprop against central finite differences")
struct GradientCheckTests {
    @Test("Dense with each activation, under mean squared error", arguments: ActivationKind.allCases)
    func denseActivations(_ activation: ActivationKind) {
        gradientCheck(
            [Dense(units: 6, activation: activation), Dense(units: 3)], inputs: 4, loss: .meanSquaredError, classes: 3)
    }

    @Test("Activation layers, each kind", arguments: ActivationKind.allCases)
    func activationLayers(_ kind: ActivationKind) {
        gradientCheck(
            [Dense(units: 7), ActivationLayer(kind), Dense(units: 3)], inputs: 5, loss: .sumSquaredError, classes: 3)
    }

    @Test("every loss", arguments: Loss.allCases)
    func losses(_ loss: Loss) {
        // Cross-entropies with a softmax output (fused), squared errors with a sigmoid output, binary
        // cross-entropy with one sigmoid output (fused).
        let last: ActivationKind = loss.isCrossEntropy ? .softmax : .sigmoid
        let units = loss == .binaryCrossentropy ? 1 : 4
        gradientCheck(
            [Dense(units: 8, activation: .tanh), Dense(units: units, activation: last)], inputs: 3, loss: loss,
            classes: units == 1 ? 2 : 4)
    }

    @Test(
        "every loss on real-valued or probability targets, with and without sample weights",
        arguments: Loss.allCases.filter { $0 != .sparseCategoricalCrossentropy }, [false, true])
    func valueTargets(_ loss: Loss, weighted: Bool) {
        let last: ActivationKind = loss.isCrossEntropy ? .softmax : loss == .binaryCrossentropy ? .sigmoid : .linear
        let units = loss == .binaryCrossentropy ? 1 : 3
        gradientCheck(
            [Dense(units: 8, activation: .tanh), Dense(units: units, activation: last)], inputs: 3, loss: loss,
            classes: 3, rows: 7, options: LossOptions(delta: 0.4), targets: loss.fusesOutput ? .probabilities : .values,
            weighted: weighted)
    }

    @Test(
        "cross-entropies from logits (a linear output), class labels and probabilities, weighted or not",
        arguments: [Loss.sparseCategoricalCrossentropy, .categoricalCrossentropy, .binaryCrossentropy], [false, true])
    func fromLogits(_ loss: Loss, weighted: Bool) {
        let units = loss == .binaryCrossentropy ? 1 : 4
        for style in loss == .sparseCategoricalCrossentropy ? [TargetStyle.labels] : [.labels, .probabilities] {
            gradientCheck(
                [Dense(units: 8, activation: .tanh), Dense(units: units)], inputs: 3, loss: loss,
                classes: units == 1 ? 2 : 4, options: LossOptions(fromLogits: true), targets: style, weighted: weighted)
        }
    }

    @Test("class labels weighted per sample, every loss", arguments: Loss.allCases)
    func weightedLabels(_ loss: Loss) {
        let last: ActivationKind = loss.isCrossEntropy ? .softmax : .sigmoid
        let units = loss == .binaryCrossentropy ? 1 : 4
        gradientCheck(
            [Dense(units: 8, activation: .tanh), Dense(units: units, activation: last)], inputs: 3, loss: loss,
            classes: units == 1 ? 2 : 4, weighted: true)
    }

    @Test("cross-entropy is defined only after a softmax over 2 or more units; the rest is refused")
    func crossEntropyNeedsSoftmax() {
        func output(_ activation: ActivationKind, _ units: Int) -> OutputDescription {
            OutputDescription(
                layers: [.dense(units: 6, activation: .relu), .dense(units: units, activation: activation)],
                inputWidth: 4)
        }
        #expect(Loss.sparseCategoricalCrossentropy.refusal(for: output(.sigmoid, 3)) != nil)
        #expect(Loss.categoricalCrossentropy.refusal(for: output(.linear, 3)) != nil)
        #expect(Loss.sparseCategoricalCrossentropy.refusal(for: output(.softmax, 1)) != nil)
        #expect(Loss.sparseCategoricalCrossentropy.refusal(for: output(.softmax, 2)) == nil)
        #expect(Loss.meanSquaredError.refusal(for: output(.softmax, 1)) != nil)
        #expect(Loss.meanSquaredError.refusal(for: output(.relu, 1)) == nil)
        // from_logits: a linear output only, and cross-entropies only.
        let logits = LossOptions(fromLogits: true)
        #expect(Loss.categoricalCrossentropy.refusal(for: output(.linear, 3), options: logits) == nil)
        #expect(Loss.categoricalCrossentropy.refusal(for: output(.softmax, 3), options: logits) != nil)
        #expect(Loss.binaryCrossentropy.refusal(for: output(.linear, 1), options: logits) == nil)
        #expect(Loss.binaryCrossentropy.refusal(for: output(.linear, 2), options: logits) != nil)
        #expect(Loss.meanSquaredError.refusal(for: output(.linear, 1), options: logits) != nil)
    }

    @Test("one output unit (binary target), sum of squared errors")
    func oneOutput() {
        gradientCheck(
            [Dense(units: 2, activation: .sigmoid), Dense(units: 1, activation: .sigmoid)], inputs: 2,
            loss: .sumSquaredError, classes: 2)
    }

    @Test("Dropout with a fixed mask (same seed and step in every pass)")
    func dropout() {
        gradientCheck(
            [Dense(units: 12, activation: .relu), Dropout(rate: 0.4), Dense(units: 3, activation: .softmax)],
            inputs: 4, loss: .sparseCategoricalCrossentropy, classes: 3)
    }

    @Test("relu below a dense layer: the mask fused into the input-gradient GEMM")
    func fusedReluMask() {
        gradientCheck(
            [
                Dense(units: 9, activation: .relu), Dense(units: 8, activation: .relu),
                Dense(units: 5, activation: .softmax),
            ],
            inputs: 6, loss: .sparseCategoricalCrossentropy, classes: 5, rows: 7)
        gradientCheck(
            [Dense(units: 9), ActivationLayer(.relu), Dense(units: 4, activation: .softmax)],
            inputs: 6, loss: .categoricalCrossentropy, classes: 4)
    }

    @Test("a wide layer: more units than one register tile, many rows")
    func wide() {
        gradientCheck(
            [Dense(units: 40, activation: .relu), Dense(units: 10, activation: .softmax)],
            inputs: 35, loss: .sparseCategoricalCrossentropy, classes: 10, rows: 13)
    }
}

@Suite("Weighted losses against hand-computed values")
struct WeightedLossTests {
    @Test("Keras' reduction: each row's loss times its weight, the gradient scaled by w / B (B = 4, not Σw)")
    func keras() {
        // Two rows of a 2-output model, y = (1, −1) and (0.5, 2), targets (0, 0) and (0.5, 1), weights 2 and 0.25.
        var y: [Float] = [1, -1, 0.5, 2]
        let t: [Float] = [0, 0, 0.5, 1]
        let w: [Float] = [2, 0.25]
        var dy = [Float](repeating: 0, count: 4)
        var loss: [Float] = [0, 0]
        var metric: [Float] = [0, 0]
        let labels: [Int32] = [0, 0]
        for (kind, rowLoss, gradient, delta) in [
            // mse: ℓ = mean d²: row 1 (1 + 1)/2 = 1, row 2 (0 + 1)/2 = 0.5; ∂ = 2d/2 · w/4.
            (Loss.meanSquaredError, [2 * 1, 0.25 * 0.5], [1 * 0.5, -1 * 0.5, 0, 1 * 0.0625], Float(1)),
            // mae: ℓ = mean |d|: 1 and 0.5; ∂ = sign(d)/2 · w/4.
            (.meanAbsoluteError, [2 * 1, 0.25 * 0.5], [0.25, -0.25, 0, 0.25 * 0.125], 1),
            // huber, δ = 0.5: h(1) = 0.5(1 − 0.25) = 0.375 per unit; row 2: h(1) = 0.375 → mean 0.1875.
            (.huber, [2 * 0.375, 0.25 * 0.1875], [0.5 / 2 * 0.5, -0.5 / 2 * 0.5, 0, 0.5 / 2 * 0.0625], 0.5),
        ] as [(Loss, [Float], [Float], Float)] {
            y.withUnsafeMutableBufferPointer { yp in
                dy.withUnsafeMutableBufferPointer { dp in
                    t.withUnsafeBufferPointer { tp in
                        w.withUnsafeBufferPointer { wp in
                            labels.withUnsafeBufferPointer { lp in
                                kind.evaluate(
                                    y: Rows(yp.baseAddress!, count: 2, width: 2),
                                    targets: Targets(
                                        labels: lp.baseAddress!, values: tp.baseAddress!, width: 2,
                                        weights: wp.baseAddress!),
                                    scale: 1.0 / 4, dy: Rows(dp.baseAddress!, count: 2, width: 2),
                                    options: LossOptions(delta: delta), loss: &loss, metric: &metric)
                            }
                        }
                    }
                }
            }
            #expect(zip(loss, rowLoss).allSatisfy { abs($0 - $1) < 1e-6 }, "\(kind): \(loss)")
            #expect(zip(dy, gradient).allSatisfy { abs($0 - $1) < 1e-6 }, "\(kind): \(dy)")
            #expect(metric == [1, 0.5], "the metric is the unweighted mean absolute error")
        }
    }
}
