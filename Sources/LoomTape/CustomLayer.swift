// CustomLayer: a layer written with tensor operations, as a Keras subclassed layer (`setUp` adds the weights,
// `call` computes), whose backward pass the GradientTape derives. It plugs into a `Sequential` beside `Dense` and
// trains data-parallel on the engine's workers:
//   forward            y = call(x)                           on a worker's rows (each worker thread has a tape)
//   backward           dx = ∂(Σ y ⊙ dy)/∂x                    on a worker's rows (`call` recorded again)
//   parameterGradient  dθ = ∂(Σ y ⊙ dy)/∂θ over the batch     on one worker, then the optimizer step
// The weight gradient is the documented fallback of the owner-computes step: where `Dense` cuts its weight
// gradient into blocks for every worker, a tape's gradient is computed whole, by one worker (the plan gives each
// custom layer to one worker, `loom plan` names it). The other workers meanwhile compute the other layers' blocks.
//
// Determinism: a row's output and input gradient depend on that row only (the GEMM kernels give each output the
// same FMA chain whatever block of rows it is in), and the weight gradient is one recording over the whole batch
// in row order, so the trained weights are the same for any worker count. This holds when `call` treats rows
// independently — no sum or mean over the batch axis — as every Keras layer but batch normalization does.
import LoomKernels
import LoomNN

/// One weight tensor of a `CustomLayer`, declared in `setUp(inputWidth:)` with `addWeight`.
public final class Weight {
    /// The weight's name in the layer (`kernel`).
    public let name: String
    /// Its dimensions.
    public let shape: Shape
    /// How its values start.
    public let initializer: Initializer
    /// A penalty on the values, added to the loss (Keras' `regularizer` of `add_weight`).
    public let regularizer: Regularizer?
    /// The layer that declared it, its place among that layer's weights, and its offset in the layer's flat
    /// parameters.
    let owner: ObjectIdentifier
    let index: Int
    let offset: Int

    init(
        name: String, shape: Shape, initializer: Initializer, regularizer: Regularizer?, owner: ObjectIdentifier,
        index: Int, offset: Int
    ) {
        self.name = name
        self.shape = shape
        self.initializer = initializer
        self.regularizer = regularizer
        self.owner = owner
        self.index = index
        self.offset = offset
    }

    /// The weight as a tensor of the tape recording the layer's `call` (read it there).
    public var value: Tensor {
        get throws(TapeError) { try GradientTape.recording().layerWeight(self) }
    }
}

/// A layer whose forward pass is written with tensor operations; the tape gives its backward pass. Subclass it,
/// declare weights in `setUp(inputWidth:)` and compute in `call(_:)`:
///
///     final class SimpleDense: CustomLayer {
///         let units: Int
///         var w: Weight!
///         var b: Weight!
///         init(units: Int) { self.units = units; super.init() }
///         override func setUp(inputWidth: Int) -> Int {
///             w = addWeight("kernel", shape: [inputWidth, units], initializer: .glorotUniform)
///             b = addWeight("bias", shape: [units], initializer: .zeros)
///             return units
///         }
///         override func call(_ x: Tensor) throws(TapeError) -> Tensor { try (x.matmul(w.value) + b.value).relu() }
///     }
///
/// `call` receives a batch of rows (`[rows, inputWidth]`) and returns `[rows, outputWidth]`; it must treat rows
/// independently (see the file's header for why). `Model` checks both when it is built and throws otherwise.
open class CustomLayer: Layer {
    /// Values per input row (set when the model is built).
    public private(set) var inputWidth = 0
    /// Values per output row (what `setUp` returned).
    public private(set) var outputWidth = 0
    /// The weights `setUp` declared, in storage order.
    public private(set) var weights: [Weight] = []
    private var parameters: UnsafeMutablePointer<Float>?
    private var gradients: UnsafeMutablePointer<Float>?
    private var weightCount = 0

    /// A layer with no weights yet (`setUp` declares them).
    public init() {}

    // MARK: What a subclass writes

    /// Declares the weights (with `addWeight`) for rows of `inputWidth` values and returns the output width.
    /// The default declares none and keeps the width.
    open func setUp(inputWidth: Int) -> Int { inputWidth }

    /// The forward pass on a batch of rows, with tensor operations (read weights with `weight.value`).
    open func call(_ x: Tensor) throws(TapeError) -> Tensor { x }

    /// Declares a weight of `shape` (call it from `setUp`). Its fan-in and fan-out for the initializer are the
    /// first and last dimensions (a vector's are its length).
    public func addWeight(
        _ name: String, shape: Shape, initializer: Initializer = .glorotUniform, regularizer: Regularizer? = nil
    ) -> Weight {
        let weight = Weight(
            name: name, shape: shape, initializer: initializer, regularizer: regularizer,
            owner: ObjectIdentifier(self), index: weights.count, offset: weightCount)
        weights.append(weight)
        weightCount += shape.count
        return weight
    }

    // MARK: Layer

    open var typeName: String { String(describing: type(of: self)) }
    open var detail: String { "tape" }

    public var parameterTensors: [ParameterTensor] {
        weights.map {
            ParameterTensor(name: $0.name, shape: $0.shape.dims, offset: $0.offset, regularizer: $0.regularizer)
        }
    }

    public func build(inputWidth: Int) {
        weights = []
        weightCount = 0
        self.inputWidth = inputWidth
        outputWidth = setUp(inputWidth: inputWidth)
    }

    public func bind(parameters: UnsafeMutablePointer<Float>, gradients: UnsafeMutablePointer<Float>) {
        self.parameters = parameters
        self.gradients = gradients
    }

    /// Fills each weight from its initializer (fan-in and fan-out: its first and last dimensions).
    public func initialize(rng: inout Random) {
        guard let parameters else { return }
        for w in weights {
            let dims = w.shape.dims
            w.initializer.fill(
                parameters + w.offset, count: w.shape.count, fanIn: dims.first ?? 1, fanOut: dims.last ?? 1, rng: &rng)
        }
    }

    /// Runs `call` once on two rows of zeros (and its gradients) with zero weights: nil when it works, else why.
    public func refusal() -> String? {
        guard outputWidth > 0 else {
            return "\(typeName).setUp returned output width \(outputWidth); expected 1 or more"
        }
        let probe = AlignedBuffer(count: max(1, weightCount))
        let rows = 2
        let tape = GradientTape()
        do {
            return try tape.record { () throws(TapeError) -> String? in
                let x = try tape.watch(
                    tape.constant([Float](repeating: 0, count: rows * inputWidth), shape: [rows, inputWidth]))
                let w = try bindWeights(tape, probe.pointer, watched: true)
                let y = try call(x)
                guard y.shape == Shape([rows, outputWidth]) else {
                    return
                        "\(typeName).call returned a tensor of shape \(y.shape) for \(rows) rows; expected (\(rows), \(outputWidth)) (the width setUp returned)"
                }
                _ = try tape.gradient(of: try y.sum(), withRespectTo: [x] + w)
                return nil
            }
        } catch {
            return "\(typeName).call: \(error)"
        }
    }

    /// y = call(x) on a block of rows.
    public func forward(_ x: Rows, _ y: Rows, pass: Pass, workspace: GemmWorkspace) {
        let tape = GradientTape.ofThisThread()
        tape.reset()
        run(tape) { () throws(TapeError) in
            _ = try bindWeights(tape, parameters!, watched: false)
            store(try call(tape.rows(x)).data, y)
        }
    }

    /// dx = ∂(Σ y ⊙ dy)/∂x on a block of rows: `call` recorded again with x watched.
    public func backward(x: Rows, y: Rows, dy: Rows, dx: Rows?, pass: Pass, workspace: GemmWorkspace) {
        guard let dx else { return }
        let tape = GradientTape.ofThisThread()
        tape.reset()
        run(tape) { () throws(TapeError) in
            let input = try tape.watch(tape.rows(x))
            _ = try bindWeights(tape, parameters!, watched: false)
            let target = try (call(input) * tape.rows(dy)).sum()
            try tape.backward(from: target)
            store(tape.gradientBuffer(Int(input.node)), dx)
        }
    }

    /// The whole of the layer's parameters is one part (the tape's gradient is not cut).
    public func parameterSlices(part: Int, of parts: Int) -> ParameterSlices {
        part == 0 ? ParameterSlices(first: 0..<weightCount, second: 0..<0) : .none
    }

    /// dθ = ∂(Σ y ⊙ dy)/∂θ over every row of the batch, into the gradient buffer; with `update`, the optimizer
    /// step on every weight (each with its regularizer).
    public func parameterGradient(
        x: Rows, dy: Rows, part: Int, of parts: Int, update: UpdateRule?, workspace: GemmWorkspace
    ) -> ParameterSlices {
        guard part == 0, weightCount > 0 else { return .none }
        let tape = GradientTape.ofThisThread()
        tape.reset()
        run(tape) { () throws(TapeError) in
            _ = try bindWeights(tape, parameters!, watched: true)
            let target = try (call(tape.rows(x)) * tape.rows(dy)).sum()
            try tape.backward(from: target)
            for (weight, tensor) in zip(weights, tape.layerWeights) {
                (gradients! + weight.offset).update(
                    from: tape.gradientBuffer(Int(tensor.node)), count: weight.shape.count)
            }
        }
        if let update {
            for w in weights {
                applyUpdate(update.regularized(w.regularizer), w.offset..<w.offset + w.shape.count)
            }
        }
        return parameterSlices(part: 0, of: 1)
    }

    // MARK: Helpers

    /// The weights as tensors of `tape` over `base` (watched: their gradients can be asked for), readable through
    /// `Weight.value` while `call` runs.
    private func bindWeights(_ tape: GradientTape, _ base: UnsafeMutablePointer<Float>, watched: Bool)
        throws(TapeError) -> [Tensor]
    {
        tape.layerWeights.removeAll(keepingCapacity: true)
        tape.layerWeightsOwner = ObjectIdentifier(self)
        for w in weights {
            let t = tape.constant(wrapping: base + w.offset, shape: w.shape)
            tape.layerWeights.append(watched ? try tape.watch(t) : t)
        }
        return tape.layerWeights
    }

    /// Copies `[rows, width]` values (a tensor's or a gradient's, row-major) into a block of rows.
    private func store(_ values: UnsafePointer<Float>, _ out: Rows) {
        for r in 0..<out.count { out.row(r).update(from: values + r * out.width, count: out.width) }
    }

    /// Runs a recording on a worker: `refusal()` ran the same operations on these shapes when the model was
    /// built, so a throw here is a bug, not a user's mistake.
    private func run(_ tape: GradientTape, _ body: () throws(TapeError) -> Void) {
        do {
            try tape.record(body)
        } catch {
            preconditionFailure("\(typeName): \(error), although the same call passed when the model was built")
        }
    }
}

extension GradientTape {
    /// A block of rows as a `[count, width]` constant (the rows' own floats when they are contiguous, else a copy).
    func rows(_ r: Rows) -> Tensor {
        let shape = Shape([r.count, r.width])
        if r.ld == r.width || r.count <= 1 { return constant(wrapping: r.base, shape: shape) }
        let copy = values.take(r.count * r.width)
        for i in 0..<r.count { (copy + i * r.width).update(from: r.row(i), count: r.width) }
        return constant(wrapping: copy, shape: shape)
    }

    /// The tensor of `weight` bound for the layer call being recorded.
    func layerWeight(_ weight: Weight) throws(TapeError) -> Tensor {
        guard layerWeightsOwner == weight.owner, weight.index < layerWeights.count else {
            throw .released(
                "weight '\(weight.name)' was read outside its layer's call; read a CustomLayer's weights inside call(_:)"
            )
        }
        return layerWeights[weight.index]
    }
}
