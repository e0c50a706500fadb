// Sequential: a stack of layers, their parameters in one flat 64-byte-aligned buffer (each layer a view), the
// gradients in a second one of the same layout, and a loss. The model knows how to run a block of rows forward,
// compute the loss and the activation gradients, and compute its share of the parameter gradients; *who* runs
// which rows and when is the engine's business (LoomEngine), which adds fit / evaluate / predict.
import LoomKernels

/// A Keras-style sequential model.
public final class Sequential: @unchecked Sendable {
    // Sendable: after `init` the object graph is fixed; the buffers it owns are written by workers on disjoint
    // rows / parameter ranges, separated by barriers (see LoomEngine's SharedState).
    /// Values per input sample.
    public let inputWidth: Int
    /// The layers, in order.
    public let layers: [any Layer]
    /// The loss (mean_squared_error's way of reading targets when `customLoss` is set).
    public let loss: Loss
    /// The loss's settings (from_logits, Huber's delta).
    public let lossOptions: LossOptions
    /// A user-written loss used instead of `loss` (which then only says how targets and metrics are read:
    /// mean_squared_error's way).
    public let customLoss: (any RowLoss)?
    /// The flat parameters and their gradients (same layout).
    public let parameters: AlignedBuffer
    /// The gradients, in the parameters' layout.
    public let gradients: AlignedBuffer
    /// Where each layer's parameters start in the flat buffers, and how many it has.
    public let offsets: [Int]
    /// Each layer's parameter count.
    public let counts: [Int]
    /// Softmax (sigmoid) + cross-entropy are fused: the last layer emits logits and the loss returns ∂L/∂z.
    /// False with `from_logits`, where the layer is linear and its outputs are logits already.
    public let fusedSoftmax: Bool

    /// Values per output sample.
    public var outputWidth: Int { layers.last!.outputWidth }
    /// The number of parameters.
    public var parameterCount: Int { parameters.count }

    /// A model of `layers` on inputs of `inputWidth` values, its parameters allocated (zero until `initialize`).
    public init(
        inputWidth: Int, layers: [any Layer], loss: Loss, lossOptions: LossOptions = LossOptions(),
        customLoss: (any RowLoss)? = nil
    ) {
        precondition(inputWidth > 0 && !layers.isEmpty, "a model needs an input width and a layer")
        self.inputWidth = inputWidth
        self.layers = layers
        self.loss = customLoss == nil ? loss : .meanSquaredError
        self.lossOptions = lossOptions
        self.customLoss = customLoss
        var width = inputWidth
        var offsets: [Int] = []
        var total = 0
        for layer in layers {
            layer.build(inputWidth: width)
            // (`Model` throws these; building a Sequential directly skips that check.)
            if let refusal = layer.refusal() { preconditionFailure(refusal) }
            width = layer.outputWidth
            offsets.append(total)
            total += layer.parameterCount
        }
        self.offsets = offsets
        counts = layers.map(\.parameterCount)
        parameters = AlignedBuffer(count: total)
        gradients = AlignedBuffer(count: total)
        for (layer, offset) in zip(layers, offsets) {
            layer.bind(parameters: parameters.pointer + offset, gradients: gradients.pointer + offset)
        }
        // The loss must be defined for this output (the config loader refuses the rest with a clear line; a
        // library caller that skips it stops here rather than index past a row).
        let output = OutputDescription(layers: layers.map(\.shape), inputWidth: inputWidth)
        if let refusal = customLoss?.refusal(outputWidth: width) ?? self.loss.refusal(for: output, options: lossOptions)
        {
            preconditionFailure(refusal)
        }
        // Fuse softmax into a cross-entropy loss (stable log-sum-exp, one pass per row), sigmoid into binary
        // cross-entropy.
        fusedSoftmax = self.loss.fusesOutput && !lossOptions.fromLogits
        if fusedSoftmax {
            (layers.last as? Dense)?.emitsLogits = true
            (layers.last as? ActivationLayer)?.emitsLogits = true
        }
        // Fuse each relu's derivative into the store of the input gradient of the dense layer above it.
        for l in 1..<layers.count {
            guard let above = layers[l] as? Dense else { continue }
            if let below = layers[l - 1] as? Dense, below.activation == .relu {
                above.masksInputGradient = true
                below.incomingMasked = true
            } else if let below = layers[l - 1] as? ActivationLayer, below.kind == .relu {
                above.masksInputGradient = true
                below.incomingMasked = true
            }
        }
    }

    /// Fills the parameters from the layers' initializers with one seeded stream.
    public func initialize(seed: UInt64) {
        var rng = Random(seed: seed)
        for layer in layers { layer.initialize(rng: &rng) }
    }

    /// Width of the activations after each layer: widths[0] is the input.
    public var widths: [Int] { [inputWidth] + layers.map(\.outputWidth) }

    /// Every parameter tensor with its model-wide name (`layers.0.kernel`), shape and flat offset.
    public var namedParameters: [ParameterTensor] {
        var result: [ParameterTensor] = []
        for (l, layer) in layers.enumerated() {
            for t in layer.parameterTensors {
                result.append(
                    ParameterTensor(
                        name: "layers.\(l).\(t.name)", shape: t.shape, offset: offsets[l] + t.offset,
                        regularizer: t.regularizer))
            }
        }
        return result
    }

    /// A Keras-style table: layer, output shape, parameter count, and the total.
    public func summary() -> String {
        var lines = [
            "Model: \"sequential\"",
            pad("Layer (type)", 30) + pad("Output Shape", 20) + "Param #",
            String(repeating: "─", count: 60),
        ]
        for (l, layer) in layers.enumerated() {
            lines.append(
                pad("\(layer.typeName.lowercased())_\(l) (\(layer.typeName), \(layer.detail))", 30)
                    + pad("(None, \(layer.outputWidth))", 20) + grouped(layer.parameterCount))
        }
        lines.append(String(repeating: "─", count: 60))
        lines.append("Total params: \(grouped(parameterCount)) (\(formatBytes(parameterCount * 4)))")
        let fusedWith = loss == .binaryCrossentropy ? "sigmoid" : "softmax"
        let how = fusedSoftmax ? " (fused with \(fusedWith))" : lossOptions.fromLogits ? " (from logits)" : ""
        lines.append("Loss: \(customLoss?.name ?? loss.rawValue)\(how)")
        return lines.joined(separator: "\n")
    }

    // MARK: The pieces of a step, on activation buffers

    /// Runs rows `rows` forward through every layer.
    public func forward(_ a: ActivationBuffers, rows: Range<Int>, pass: Pass, workspace: GemmWorkspace) {
        for l in 0..<layers.count {
            layers[l].forward(a.output(l - 1, rows), a.output(l, rows), pass: pass, workspace: workspace)
        }
    }

    /// The loss of rows `rows` against their targets (a batch's, indexed by row), into `a.rowLoss` and
    /// `a.rowMetric`; with `gradient`, also ∂L/∂(last output) scaled by 1/`batchSize`; without, the last output
    /// is left as the model's prediction (probabilities, when the loss reads logits).
    public func lossAndGradient(
        _ a: ActivationBuffers, rows: Range<Int>, targets: Targets, batchSize: Int, gradient: Bool
    ) {
        let last = layers.count - 1
        if let customLoss {
            let y = a.output(last, rows)
            let t = targets.advanced(by: rows.lowerBound)
            customLoss.evaluate(
                y: y, targets: t, scale: 1 / Float(batchSize), dy: gradient ? a.gradient(last, rows) : nil,
                loss: a.rowLoss + rows.lowerBound)
            for i in 0..<y.count { a.rowMetric[rows.lowerBound + i] = rowMetric(y.row(i), y.width, t, i) }
            return
        }
        loss.evaluate(
            y: a.output(last, rows), targets: targets.advanced(by: rows.lowerBound), scale: 1 / Float(batchSize),
            dy: gradient ? a.gradient(last, rows) : nil, options: lossOptions,
            loss: a.rowLoss + rows.lowerBound, metric: a.rowMetric + rows.lowerBound)
    }

    /// Backpropagates the activation gradients of rows `rows` down to the first layer.
    public func backward(_ a: ActivationBuffers, rows: Range<Int>, pass: Pass, workspace: GemmWorkspace) {
        for l in stride(from: layers.count - 1, through: 0, by: -1) {
            layers[l].backward(
                x: a.output(l - 1, rows), y: a.output(l, rows), dy: a.gradient(l, rows),
                dx: l > 0 ? a.gradient(l - 1, rows) : nil, pass: pass, workspace: workspace)
        }
    }

    /// Computes part `part` of `parts` of every layer's parameter gradient over the batch's first `batchSize`
    /// rows, into `gradients`. With `update` (a rule over the whole model's flat buffers), the optimizer step
    /// is then applied to exactly those parameters, while they are still in this worker's cache.
    public func parameterGradients(
        _ a: ActivationBuffers, batchSize: Int, part: Int, of parts: Int,
        update: UpdateRule? = nil, workspace: GemmWorkspace
    ) {
        for l in 0..<layers.count where counts[l] > 0 {  // (not `parameterCount`: it builds arrays)
            // The layer sees its own slice of every flat buffer.
            let local = update?.advanced(by: offsets[l])
            _ = layers[l].parameterGradient(
                x: a.output(l - 1, 0..<batchSize), dy: a.gradient(l, 0..<batchSize),
                part: part, of: parts, update: local, workspace: workspace)
        }
    }

    /// SHA-256 over the parameters' bytes (little-endian float32, layer order): equal digests, equal weights.
    public func weightsDigest() -> String {
        SHA256.hex(UnsafeRawBufferPointer(start: parameters.pointer, count: parameterCount * 4))
    }
}

/// The activations of a batch: the input and each layer's output, each gradient, and per-row loss and
/// metric (1/0 for a right/wrong class, or the absolute error), for up to `capacity` rows. Workers write disjoint row ranges of the same buffers.
public final class ActivationBuffers: @unchecked Sendable {
    // Sendable: see Sequential. Row ranges are disjoint per worker; whole-batch reads happen after a barrier.
    /// Rows the buffers hold.
    public let capacity: Int
    /// The width of the input and of each layer's output.
    public let widths: [Int]
    private let outputs: UnsafeMutableBufferPointer<UnsafeMutablePointer<Float>>
    private let gradients: UnsafeMutableBufferPointer<UnsafeMutablePointer<Float>>
    private let owned: [AlignedBuffer]
    /// Each row's loss.
    public let rowLoss: UnsafeMutablePointer<Float>
    /// Each row's metric (1 or 0 for a class, or the absolute error).
    public let rowMetric: UnsafeMutablePointer<Float>
    /// Per layer: ∂L/∂z packed into the kernels' panels for the weight gradient (tiled layers with parameters).
    private let packed: [UnsafeMutablePointer<Float>?]
    /// Per layer: the weights packed for the forward product and for the input gradient (tiled layers whose
    /// products read a packed copy; the input gradient's not for the first layer, which has none).
    private let packedWeights: [(forward: UnsafeMutablePointer<Float>?, inputGradient: UnsafeMutablePointer<Float>?)]

    /// Allocates (does not touch) the buffers: the first writer of each page places it on its NUMA node.
    public init(model: Sequential, capacity: Int) {
        self.capacity = capacity
        widths = model.widths
        var owned: [AlignedBuffer] = []
        func make(_ n: Int) -> UnsafeMutablePointer<Float> {
            let b = AlignedBuffer(count: n, zeroed: false)
            owned.append(b)
            return b.pointer
        }
        outputs = .allocate(capacity: widths.count)
        gradients = .allocate(capacity: widths.count)
        for (i, w) in widths.enumerated() {
            outputs[i] = make(capacity * w)
            gradients[i] = make(capacity * w)
        }
        rowLoss = make(capacity)
        rowMetric = make(capacity)
        packed = model.layers.map { layer in
            layer is TiledLayer && layer.parameterCount > 0
                ? make(packedPanelsCount(n: layer.outputWidth, k: capacity)) : nil
        }
        packedWeights = model.layers.enumerated().map { l, layer in
            guard let tiled = layer as? TiledLayer else { return (nil, nil) }
            let (forward, input) = (tiled.packedWeightsCount(.forward), tiled.packedWeightsCount(.inputGradient))
            return (forward > 0 ? make(forward) : nil, l > 0 && input > 0 ? make(input) : nil)
        }
        self.owned = owned
    }

    deinit {
        outputs.deallocate()
        gradients.deallocate()
    }

    /// The model's input rows (layer −1's output).
    @inline(__always) public var input: UnsafeMutablePointer<Float> { outputs[0] }

    /// Rows of the output of layer `l` (l = −1: the input).
    @inline(__always) public func output(_ l: Int, _ rows: Range<Int>) -> Rows {
        let w = widths[l + 1]
        return Rows(outputs[l + 1] + rows.lowerBound * w, count: rows.count, width: w)
    }
    /// Layer `l`'s ∂L/∂z packed into the kernels' panels (`packPanels`), which its weight gradient reads
    /// instead of ∂L/∂z itself; nil for layers that are not tiled or have no parameters.
    @inline(__always) public func packedGradient(_ l: Int) -> UnsafeMutablePointer<Float>? { packed[l] }
    /// Layer `l`'s weights packed for its forward product (`TiledLayer.packWeights`); nil for layers that read
    /// none. The step keeps it current: packed at the start of each job, each block again after its update.
    @inline(__always) public func packedWeights(_ l: Int, _ operand: WeightOperand) -> UnsafeMutablePointer<Float>? {
        operand == .forward ? packedWeights[l].forward : packedWeights[l].inputGradient
    }
    /// Rows of ∂L/∂(output of layer l).
    @inline(__always) public func gradient(_ l: Int, _ rows: Range<Int>) -> Rows {
        let w = widths[l + 1]
        return Rows(gradients[l + 1] + rows.lowerBound * w, count: rows.count, width: w)
    }
}

func pad(_ s: String, _ n: Int) -> String { s.count >= n ? s + " " : s + String(repeating: " ", count: n - s.count) }

/// 407050 → "407,050".
public func grouped(_ n: Int) -> String {
    let s = String(n)
    var out = ""
    for (i, ch) in s.enumerated() {
        if i > 0 && (s.count - i) % 3 == 0 { out.append(",") }
        out.append(ch)
    }
    return out
}

/// 1628200 → "1.55 MB".
public func formatBytes(_ n: Int) -> String {
    if n < 1024 { return "\(n) B" }
    if n < 1024 * 1024 { return String(format2(Double(n) / 1024)) + " KB" }
    return String(format2(Double(n) / 1_048_576)) + " MB"
}

func format2(_ x: Double) -> String {
    let r = (x * 100).rounded() / 100
    var s = String(r)
    if let dot = s.firstIndex(of: ".") {
        let decimals = s.distance(from: dot, to: s.endIndex) - 1
        if decimals == 1 { s += "0" }
    }
    return s
}

extension Layer {
    /// The layer as the output check sees it (`OutputDescription`): a layer Loom does not know is linear.
    public var shape: OutputDescription.LayerShape {
        switch self {
        case let dense as Dense: .dense(units: dense.units, activation: dense.activation)
        case let activation as ActivationLayer: .activation(activation.kind)
        case is Dropout: .dropout
        default: .dense(units: outputWidth, activation: .linear)
        }
    }
}
