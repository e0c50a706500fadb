// Dense: y = activation(x · W + b), W: [in × out] (Keras' layout), b: [out].
//   penalty   l1·Σ|W| + l2·ΣW² per regularizer (its gradient is added by the update: Regularization.swift)
//   forward   z = x·W + b, y = f(z)           (bias and relu fused into the GEMM's store)
//   backward  dz = dy ⊙ f'(y), dx = dz · Wᵀ    (dx's store can apply the layer below's relu mask)
//   gradient  dW = xᵀ · dz, db = Σ_rows dz      (over the whole batch; a worker computes some rows of dW)
import LoomKernels

/// A fully connected layer, as Keras' `Dense(units, activation, kernel_initializer, bias_initializer)`.
public final class Dense: TiledLayer {
    /// Outputs per sample.
    public let units: Int
    /// The activation applied to x·W + b.
    public let activation: ActivationKind
    /// How W is initialized.
    public let kernelInitializer: Initializer
    /// How b is initialized.
    public let biasInitializer: Initializer
    /// Penalties on W and b added to the loss (Keras' kernel_regularizer and bias_regularizer).
    public let kernelRegularizer: Regularizer?
    /// A penalty on b added to the loss.
    public let biasRegularizer: Regularizer?
    /// Inputs per sample (set by `build`).
    public private(set) var inputWidth = 0

    /// Set by the model when this softmax layer feeds a cross-entropy loss: the layer then emits logits and
    /// receives ∂L/∂z directly (the fused, stable softmax + cross-entropy lives in the loss).
    public var emitsLogits = false
    /// Set by the model when the layer below is relu-activated: dx is then masked in the GEMM's store, and
    /// `incomingMasked` is set on that layer so it skips its own mask pass.
    public var masksInputGradient = false
    /// Set by the model when the layer above masks this layer's relu gradient.
    public var incomingMasked = false

    private var w: UnsafeMutablePointer<Float>!
    private var b: UnsafeMutablePointer<Float>!
    private var dw: UnsafeMutablePointer<Float>!
    private var db: UnsafeMutablePointer<Float>!

    /// A layer of `units` outputs, Keras' defaults: linear, Glorot-uniform W, zero b, no penalties.
    public init(
        units: Int, activation: ActivationKind = .linear,
        kernelInitializer: Initializer = .glorotUniform, biasInitializer: Initializer = .zeros,
        kernelRegularizer: Regularizer? = nil, biasRegularizer: Regularizer? = nil
    ) {
        self.units = units
        self.activation = activation
        self.kernelInitializer = kernelInitializer
        self.biasInitializer = biasInitializer
        self.kernelRegularizer = kernelRegularizer
        self.biasRegularizer = biasRegularizer
    }

    public var typeName: String { "Dense" }
    /// Nil for 1 or more units.
    public func refusal() -> String? {
        units > 0 ? nil : "Dense(units: \(units)): a dense layer needs at least one unit"
    }
    public var detail: String { activation.rawValue }
    /// The outputs per sample: `units`.
    public var outputWidth: Int { units }
    public var parameterTensors: [ParameterTensor] {
        [
            ParameterTensor(name: "kernel", shape: [inputWidth, units], offset: 0, regularizer: kernelRegularizer),
            ParameterTensor(name: "bias", shape: [units], offset: inputWidth * units, regularizer: biasRegularizer),
        ]
    }

    public func build(inputWidth: Int) { self.inputWidth = inputWidth }

    public func bind(parameters: UnsafeMutablePointer<Float>, gradients: UnsafeMutablePointer<Float>) {
        w = parameters
        b = parameters + inputWidth * units
        dw = gradients
        db = gradients + inputWidth * units
    }

    /// Fills W and b from their initializers.
    public func initialize(rng: inout Random) {
        kernelInitializer.fill(w, count: inputWidth * units, fanIn: inputWidth, fanOut: units, rng: &rng)
        biasInitializer.fill(b, count: units, fanIn: inputWidth, fanOut: units, rng: &rng)
    }

    public func forward(_ x: Rows, _ y: Rows, pass: Pass, workspace: GemmWorkspace) {
        forwardTile(x, y, columns: 0..<units, workspace: workspace)
    }

    public func backward(x: Rows, y: Rows, dy: Rows, dx: Rows?, pass: Pass, workspace: GemmWorkspace) {
        activationGradient(y: y, dy: dy)
        if let dx { inputGradientTile(x: x, dz: dy, dx: dx, columns: 0..<inputWidth, workspace: workspace) }
    }

    // MARK: Tiles (TiledLayer): the engine cuts the two products into rows × columns

    /// Column tiles are fine unless the activation needs the whole row (a softmax not fused into the loss).
    public var splitsOutputColumns: Bool { activation != .softmax || emitsLogits }

    /// y[rows, columns] = f(x[rows] · W[:, columns] + b[columns]): the forward pass of one tile.
    public func forwardTile(_ x: Rows, _ y: Rows, columns: Range<Int>, workspace: GemmWorkspace) {
        forward(x, y, columns: columns, packedWeights: nil, workspace: workspace)
    }

    public func forwardTile(
        _ x: Rows, _ y: Rows, columns: Range<Int>, packedWeights: UnsafePointer<Float>, workspace: GemmWorkspace
    ) {
        forward(x, y, columns: columns, packedWeights: packedWeights, workspace: workspace)
    }

    /// W (inputWidth × units) packed for the forward product, or Wᵀ for the input gradient's.
    public func packedWeightsCount(_ operand: WeightOperand) -> Int {
        switch operand {
        case .forward: packedOperandCount(n: units, k: inputWidth)
        case .inputGradient: packedOperandCount(n: inputWidth, k: units)
        }
    }

    /// Packs W's rows (inputs) of part `part` of `parts`, the rows that part's update changes: the forward
    /// product's depth, or the input gradient's columns.
    public func packWeights(
        _ operand: WeightOperand, part: Int, of parts: Int, into packed: UnsafeMutablePointer<Float>
    ) {
        let rows = weightRows(part: part, of: parts)
        switch operand {
        case .forward:
            packOperand(
                k: inputWidth, n: units, from: w, ldb: units, transposed: false, depth: rows, columns: 0..<units,
                into: packed)
        case .inputGradient:
            packOperand(
                k: units, n: inputWidth, from: w, ldb: units, transposed: true, depth: 0..<units, columns: rows,
                into: packed)
        }
    }

    /// W's rows (inputs) that part `part` of `parts` owns.
    private func weightRows(part: Int, of parts: Int) -> Range<Int> {
        let slice = parameterSlices(part: part, of: parts).first
        return slice.lowerBound / units..<slice.upperBound / units
    }

    /// Where W's rows of part `part` lie in the forward product's packed copy.
    public func packedWeightRanges(part: Int, of parts: Int) -> [Range<Int>] {
        packedRowRanges(k: inputWidth, n: units, depth: weightRows(part: part, of: parts))
    }

    /// W's rows of part `part`, read back from the forward product's packed copy.
    public func unpackWeights(part: Int, of parts: Int, from packed: UnsafePointer<Float>) {
        unpackOperand(
            k: inputWidth, n: units, from: packed, depth: weightRows(part: part, of: parts), into: w, ldb: units)
    }

    /// y[rows, columns] = f(x[rows] · W[:, columns] + b[columns]), W read from its packed copy when given.
    private func forward(
        _ x: Rows, _ y: Rows, columns: Range<Int>, packedWeights: UnsafePointer<Float>?, workspace: GemmWorkspace
    ) {
        let j0 = columns.lowerBound
        let epilogue: GemmEpilogue = activation == .relu ? .biasRelu(b + j0) : .bias(b + j0)
        gemm(
            m: x.count, n: columns.count, k: inputWidth, a: x.base, lda: x.ld, transposeA: false,
            b: w + j0, ldb: units, transposeB: false, c: y.base + j0, ldc: y.ld, epilogue: epilogue,
            kernelWidth: units, packedB: packedWeights.map { PackedPanels($0, width: units, firstColumn: j0) },
            workspace: workspace)
        if activation != .relu && !emitsLogits {
            applyActivation(activation, rows: y.count, cols: columns.count, y.base + j0, ld: y.ld)
        }
    }

    /// The relu mask was applied by the input-gradient store of the layer above, or the loss gave ∂L/∂z.
    public var activationGradientIsFused: Bool { incomingMasked || emitsLogits }

    /// dz = dy ⊙ f'(y) in place, for a block of rows (nothing when the relu mask or the loss already did it).
    public func activationGradient(y: Rows, dy: Rows) {
        if !activationGradientIsFused {
            multiplyActivationDerivative(
                activation, rows: dy.count, cols: units, y: y.base, ldy: y.ld, dy: dy.base, ld: dy.ld)
        }
    }

    /// dx[rows, columns] = dz[rows] · W[columns, :]ᵀ, masked by the relu below where fused: one tile of the
    /// input gradient (its columns are rows of W, the rows whose update the same worker may own).
    public func inputGradientTile(x: Rows, dz: Rows, dx: Rows, columns: Range<Int>, workspace: GemmWorkspace) {
        inputGradient(x: x, dz: dz, dx: dx, columns: columns, packedWeights: nil, workspace: workspace)
    }

    public func inputGradientTile(
        x: Rows, dz: Rows, dx: Rows, columns: Range<Int>, packedWeights: UnsafePointer<Float>,
        workspace: GemmWorkspace
    ) {
        inputGradient(x: x, dz: dz, dx: dx, columns: columns, packedWeights: packedWeights, workspace: workspace)
    }

    /// dx[rows, columns] = dz[rows] · W[columns, :]ᵀ (relu-masked where fused), Wᵀ read from its packed copy
    /// when given.
    private func inputGradient(
        x: Rows, dz: Rows, dx: Rows, columns: Range<Int>, packedWeights: UnsafePointer<Float>?,
        workspace: GemmWorkspace
    ) {
        let i0 = columns.lowerBound
        gemm(
            m: dz.count, n: columns.count, k: units, a: dz.base, lda: dz.ld, transposeA: false,
            b: w + i0 * units, ldb: units, transposeB: true, c: dx.base + i0, ldc: dx.ld,
            epilogue: masksInputGradient ? .reluMask(x.base + i0, ld: x.ld) : .none, kernelWidth: inputWidth,
            packedB: packedWeights.map { PackedPanels($0, width: inputWidth, firstColumn: i0) }, workspace: workspace)
    }

    /// Part `part` of `parts`: a block of W's rows (inputs i0..<i1) and a block of the bias.
    public func parameterSlices(part: Int, of parts: Int) -> ParameterSlices {
        let i0 = inputWidth * part / parts
        let i1 = inputWidth * (part + 1) / parts
        let biasOffset = inputWidth * units
        return ParameterSlices(
            first: i0 * units..<i1 * units,
            second: biasOffset + units * part / parts..<biasOffset + units * (part + 1) / parts)
    }

    public func parameterGradient(
        x: Rows, dy: Rows, part: Int, of parts: Int, update: UpdateRule?,
        workspace: GemmWorkspace
    ) -> ParameterSlices {
        weightGradient(x: x, dy: dy, packedDy: nil, part: part, of: parts, update: update, workspace: workspace)
    }

    public func parameterGradient(
        x: Rows, dy: Rows, packedDy: UnsafePointer<Float>, part: Int, of parts: Int, update: UpdateRule?,
        workspace: GemmWorkspace
    ) -> ParameterSlices {
        weightGradient(x: x, dy: dy, packedDy: packedDy, part: part, of: parts, update: update, workspace: workspace)
    }

    /// dW[i0..<i1, :] = X[:, i0..<i1]ᵀ · dZ and db[j0..<j1] = Σ_rows dZ[:, j0..<j1] for part `part` of `parts`
    /// (with `update`: the optimizer step on those parameters instead of storing dW where it can).
    private func weightGradient(
        x: Rows, dy: Rows, packedDy: UnsafePointer<Float>?, part: Int, of parts: Int, update: UpdateRule?,
        workspace: GemmWorkspace
    ) -> ParameterSlices {
        let slices = parameterSlices(part: part, of: parts)
        let i0 = slices.first.lowerBound / units
        let i1 = slices.first.upperBound / units
        let biasOffset = inputWidth * units
        let j0 = slices.second.lowerBound - biasOffset
        let j1 = slices.second.upperBound - biasOffset
        // With an update and a wide layer, dW is consumed block by block as it is computed and never stored
        // (`gemmUpdate`: the same values, three fewer memory streams); otherwise it is stored, then applied.
        let fused = update != nil && gemmUpdateSupports(n: units, k: x.count)
        let kernelUpdate = update.map { $0.regularized(kernelRegularizer) }
        if i1 > i0 {
            if fused, let update = kernelUpdate {
                gemmUpdate(
                    m: i1 - i0, n: units, k: x.count, a: x.base + i0, lda: x.ld, transposeA: true,
                    b: dy.base, ldb: dy.ld, transposeB: false, update: update.advanced(by: i0 * units),
                    packedB: packedDy.map { PackedPanels($0, width: units) }, workspace: workspace)
            } else {
                gemm(
                    m: i1 - i0, n: units, k: x.count, a: x.base + i0, lda: x.ld, transposeA: true,
                    b: dy.base, ldb: dy.ld, transposeB: false, c: dw + i0 * units, ldc: units,
                    packedB: packedDy.map { PackedPanels($0, width: units) },
                    workspace: workspace)
            }
        }
        columnSums(rows: dy.count, columns: j0..<j1, dy.base, ld: dy.ld, into: db, accumulate: false)
        if let update, let kernelUpdate {
            if !fused { applyUpdate(kernelUpdate, slices.first) }
            applyUpdate(update.regularized(biasRegularizer), slices.second)
        }
        return slices
    }
}
