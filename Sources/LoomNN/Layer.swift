// Layer: the abstraction of Data Science from Scratch ch. 19 — every layer has a forward and a backward pass —
// cut where a data-parallel step needs it cut:
//   forward            y = f(x)                       on a worker's rows
//   backward           dx = ∂L/∂x from dy = ∂L/∂y     on a worker's rows (needs no other worker's rows)
//   parameterGradient  ∂L/∂θ summed over the batch     on a part of θ (needs every row: after a barrier)
// Parameters and their gradients are views into the model's two flat buffers, bound once.
import LoomKernels

/// A block of rows of a row-major matrix of floats: `count` rows of `width` values, row stride `ld`.
public struct Rows {
    /// The first row's first value.
    public var base: UnsafeMutablePointer<Float>
    /// Rows in the block.
    public var count: Int
    /// Values per row.
    public var width: Int
    /// The distance between rows, in floats (≥ `width`).
    public var ld: Int

    /// A block of `count` rows of `width` values at `base`, rows `ld` floats apart (default: `width`).
    public init(_ base: UnsafeMutablePointer<Float>, count: Int, width: Int, ld: Int? = nil) {
        self.base = base
        self.count = count
        self.width = width
        self.ld = ld ?? width
    }
    /// Rows `range` of this block.
    @inline(__always) public func slice(_ range: Range<Int>) -> Rows {
        Rows(base + range.lowerBound * ld, count: range.count, width: width, ld: ld)
    }
    /// Row `i`'s first value.
    @inline(__always) public func row(_ i: Int) -> UnsafeMutablePointer<Float> { base + i * ld }
}

/// What a pass needs to know besides its rows.
public struct Pass: Sendable {
    /// Dropout is active only while training.
    public var training: Bool
    /// The run's seed and the optimizer step: with the batch row they key dropout's mask.
    public var seed: UInt64
    /// The optimizer step (from 1).
    public var step: UInt64
    /// The batch position of the block's first row (a dropout key independent of which worker holds the row).
    public var firstRow: Int

    /// A pass; `firstRow` is the batch position of the block's first row.
    public init(training: Bool, seed: UInt64 = 0, step: UInt64 = 0, firstRow: Int = 0) {
        self.training = training
        self.seed = seed
        self.step = step
        self.firstRow = firstRow
    }
}

/// A named parameter tensor of a layer, at `offset` within the layer's parameters.
public struct ParameterTensor: Sendable, Equatable {
    /// The layer-local name (`kernel`, `bias`).
    public var name: String
    /// The dimensions (Keras' layout: a kernel is [inputs, units]).
    public var shape: [Int]
    /// The offset in the layer's flat parameters.
    public var offset: Int
    /// A penalty on this tensor's values, added to the loss (Keras' kernel_regularizer, bias_regularizer).
    public var regularizer: Regularizer?
    /// The number of values.
    public var count: Int { shape.reduce(1, *) }

    /// A tensor of the layer's parameters.
    public init(name: String, shape: [Int], offset: Int, regularizer: Regularizer? = nil) {
        self.name = name
        self.shape = shape
        self.offset = offset
        self.regularizer = regularizer
    }
}

/// The part of a layer's parameters whose gradient one worker computed: two ranges of the layer's flat
/// parameters (a dense layer: some kernel rows, some bias entries).
public struct ParameterSlices: Sendable {
    /// The first range (a dense layer: rows of its kernel).
    public var first: Range<Int>
    /// The second range (a dense layer: entries of its bias).
    public var second: Range<Int>
    /// Two ranges of a layer's flat parameters.
    public init(first: Range<Int>, second: Range<Int>) {
        self.first = first
        self.second = second
    }
    /// No parameters.
    public static let none = ParameterSlices(first: 0..<0, second: 0..<0)
}

/// One layer of a `Sequential` model.
public protocol Layer: AnyObject {
    /// "Dense", "Activation", "Dropout".
    var typeName: String { get }
    /// A short description of the configuration, for the summary (e.g. "relu").
    var detail: String { get }
    /// Values per input sample (known after `build`).
    var inputWidth: Int { get }
    /// Values per output sample (known after `build`).
    var outputWidth: Int { get }
    /// The layer's parameter tensors (empty for parameter-free layers), in storage order.
    var parameterTensors: [ParameterTensor] { get }
    /// Sets the input width; called once by the model before binding.
    func build(inputWidth: Int)
    /// Points the layer at its parameters and their gradients inside the model's flat buffers.
    func bind(parameters: UnsafeMutablePointer<Float>, gradients: UnsafeMutablePointer<Float>)
    /// Fills the parameters from the layer's initializers, drawing from `rng` in a fixed order.
    func initialize(rng: inout Random)
    /// y = f(x) for a block of rows.
    func forward(_ x: Rows, _ y: Rows, pass: Pass, workspace: GemmWorkspace)
    /// dx = ∂L/∂x for a block of rows, given dy = ∂L/∂y (which the layer may overwrite, e.g. with ∂L/∂z).
    /// `dx` is nil for the first layer, whose input needs no gradient.
    func backward(x: Rows, y: Rows, dy: Rows, dx: Rows?, pass: Pass, workspace: GemmWorkspace)
    /// ∂L/∂θ over all rows of the batch for part `part` of `parts` of the parameters; returns which parameters
    /// that was. `dy` is what `backward` left in place. Without `update` the gradient is written to the gradient
    /// buffer; with it, the optimizer step is applied to those parameters instead (`update`'s pointers are the
    /// layer's own parameter, gradient and slot views), and a gradient consumed in cache may never reach the
    /// gradient buffer (a wide dense layer's kernel gradient: `gemmUpdate`).
    func parameterGradient(
        x: Rows, dy: Rows, part: Int, of parts: Int, update: UpdateRule?,
        workspace: GemmWorkspace
    ) -> ParameterSlices
    /// The parameters that part `part` of `parts` of `parameterGradient` covers (none for parameter-free layers).
    func parameterSlices(part: Int, of parts: Int) -> ParameterSlices
    /// After `build`: nil when the layer can run on its input width, else one line saying why not (a user-written
    /// layer whose output has the wrong shape). `Model` throws it.
    func refusal() -> String?
}

extension Layer {
    /// The number of parameters.
    public var parameterCount: Int { parameterTensors.reduce(0) { $0 + $1.count } }
    public func parameterSlices(part: Int, of parts: Int) -> ParameterSlices { .none }
    public func refusal() -> String? { nil }
}

/// A layer whose forward pass and input gradient are matrix products that the engine may cut into tiles of
/// rows × columns (LoomEngine's `StepPlan` decides the cut; the layer only says what each tile computes). Every
/// output element is the same arithmetic whichever tile computes it, so the cut never changes a result.
public protocol TiledLayer: Layer {
    /// Whether forward tiles may take some of the output columns (not when the activation needs whole rows).
    var splitsOutputColumns: Bool { get }
    /// y[rows, columns] of the forward pass; `x` and `y` hold the tile's rows (all of their columns).
    func forwardTile(_ x: Rows, _ y: Rows, columns: Range<Int>, workspace: GemmWorkspace)
    /// dz = ∂L/∂z from dy = ∂L/∂y, in place, for a block of rows.
    func activationGradient(y: Rows, dy: Rows)
    /// True when `activationGradient` does nothing (the derivative is fused elsewhere): the stage is skipped.
    var activationGradientIsFused: Bool { get }
    /// dx[rows, columns] = ∂L/∂x for the tile's rows and input columns, from dz (all of its columns); `x` is
    /// the layer's input (for a fused relu mask).
    func inputGradientTile(x: Rows, dz: Rows, dx: Rows, columns: Range<Int>, workspace: GemmWorkspace)
    /// `parameterGradient` with dz = `dy` also packed beforehand into the kernels' panels (`packPanels` over
    /// the batch's rows, `packedDy`), so that the product reads it as it lies instead of packing or streaming
    /// it per call: the same values, computed faster when many workers each take a few of W's rows.
    func parameterGradient(
        x: Rows, dy: Rows, packedDy: UnsafePointer<Float>, part: Int, of parts: Int, update: UpdateRule?,
        workspace: GemmWorkspace
    ) -> ParameterSlices
    /// Floats of the weight matrix packed as `operand`'s product reads it (`packOperand`); 0 when that product
    /// reads no packed copy.
    func packedWeightsCount(_ operand: WeightOperand) -> Int
    /// Packs, for `operand`, the weights that part `part` of `parts` of `parameterGradient` covers into
    /// `packed`: after an update, the worker that made it refreshes exactly what it changed (all: part 0 of 1).
    func packWeights(_ operand: WeightOperand, part: Int, of parts: Int, into packed: UnsafeMutablePointer<Float>)
    /// Where part `part` of `parts`'s weights lie in the forward product's packed copy (`packWeights(.forward,
    /// …)`): the contiguous ranges, in floats, that hold exactly them, so that ranks can send each other the
    /// weights they updated already packed. Empty: the weights travel as they lie and are packed on arrival.
    func packedWeightRanges(part: Int, of parts: Int) -> [Range<Int>]
    /// Part `part` of `parts`'s weights read back from the forward product's packed copy (the inverse of
    /// `packWeights(.forward, …)`): a rank rebuilds the weights that arrived packed before they are read as
    /// they lie (evaluation, checkpoints, the digest).
    func unpackWeights(part: Int, of parts: Int, from packed: UnsafePointer<Float>)
    /// `forwardTile` reading the weights from `packed`, where `packWeights(.forward, …)` left them current: the
    /// same values, without streaming the weights' rows (which lie a row apart) through L1.
    func forwardTile(
        _ x: Rows, _ y: Rows, columns: Range<Int>, packedWeights: UnsafePointer<Float>, workspace: GemmWorkspace)
    /// `inputGradientTile` reading the weights from `packed`, where `packWeights(.inputGradient, …)` left them.
    func inputGradientTile(
        x: Rows, dz: Rows, dx: Rows, columns: Range<Int>, packedWeights: UnsafePointer<Float>,
        workspace: GemmWorkspace)
}

/// Which product of a tiled layer a packed copy of its weights serves: the forward pass (X·W: W as it lies) or
/// the input gradient (dZ·Wᵀ).
public enum WeightOperand: Sendable {
    /// W, for `forwardTile`.
    case forward
    /// Wᵀ, for `inputGradientTile`.
    case inputGradient
}

extension TiledLayer {
    /// No packed copy.
    public func packedWeightsCount(_ operand: WeightOperand) -> Int { 0 }
    /// Nothing to pack.
    public func packWeights(
        _ operand: WeightOperand, part: Int, of parts: Int, into packed: UnsafeMutablePointer<Float>
    ) {}
    /// The weights travel as they lie.
    public func packedWeightRanges(part: Int, of parts: Int) -> [Range<Int>] { [] }
    /// Nothing arrives packed.
    public func unpackWeights(part: Int, of parts: Int, from packed: UnsafePointer<Float>) {}
    /// Ignores the packed copy: the layer's own `inputGradientTile`.
    public func inputGradientTile(
        x: Rows, dz: Rows, dx: Rows, columns: Range<Int>, packedWeights: UnsafePointer<Float>,
        workspace: GemmWorkspace
    ) {
        inputGradientTile(x: x, dz: dz, dx: dx, columns: columns, workspace: workspace)
    }
    /// Ignores the packed copy: the layer's own `forwardTile`.
    public func forwardTile(
        _ x: Rows, _ y: Rows, columns: Range<Int>, packedWeights: UnsafePointer<Float>, workspace: GemmWorkspace
    ) {
        forwardTile(x, y, columns: columns, workspace: workspace)
    }
    /// Ignores the packed copy: the layer's own `parameterGradient`.
    public func parameterGradient(
        x: Rows, dy: Rows, packedDy: UnsafePointer<Float>, part: Int, of parts: Int, update: UpdateRule?,
        workspace: GemmWorkspace
    ) -> ParameterSlices {
        parameterGradient(x: x, dy: dy, part: part, of: parts, update: update, workspace: workspace)
    }
}
