// StepRunner: what one stage of the step plan means for one worker — which rows or tile it computes, with
// which layer call. The plan decides the cut (StepPlan.swift); the layers compute (LoomNN); this file only
// connects the two, so the training job reads as a loop over stages.
import LoomKernels
import LoomNN

/// One worker's view of a step: its row shard, and its tile of each product.
struct StepRunner {
    let model: Sequential
    let buffers: ActivationBuffers
    let plan: StepPlan
    let workspace: GemmWorkspace
    let worker: Int
    /// The layers whose products are cut into tiles (nil for row-wise layers), cast once per job.
    let tiled: [TiledLayer?]
    /// The layers whose weights other ranks send already packed (`Exchanger.travelsPacked`), found once per job.
    let arrivesPacked: [Bool]
    /// Rows in the current batch, this rank's block of them, this worker's row shard of that block, its share
    /// of the whole batch to gather (every rank reads all input rows itself), and the pass (dropout keys).
    private(set) var batchRows = 0
    private(set) var rankRows = 0..<0
    private(set) var rows = 0..<0
    private(set) var gatherRows = 0..<0
    private var pass = Pass(training: true)

    init(model: Sequential, buffers: ActivationBuffers, plan: StepPlan, workspace: GemmWorkspace, worker: Int) {
        self.model = model
        self.buffers = buffers
        self.plan = plan
        self.workspace = workspace
        self.worker = worker
        tiled = model.layers.map { $0 as? TiledLayer }
        arrivesPacked = model.layers.indices.map {
            Exchanger.travelsPacked($0, plan: plan, model: model, buffers: buffers)
        }
    }

    /// Starts a batch of `n` rows.
    mutating func begin(rows n: Int, pass: Pass) {
        batchRows = n
        rankRows = plan.rankRows(n, rank: plan.rank)
        rows = offset(shard(rankRows.count, part: worker, of: plan.workers))
        gatherRows = plan.ranks == 1 ? rows : shard(n, part: worker, of: plan.workers)
        self.pass = pass
        self.pass.firstRow = rows.lowerBound
    }

    /// Rows of this rank's block as rows of the batch.
    @inline(__always) func offset(_ r: Range<Int>) -> Range<Int> {
        rankRows.lowerBound + r.lowerBound..<rankRows.lowerBound + r.upperBound
    }

    /// Runs one compute stage (not barriers, gather, loss or parameters: the job handles those).
    func run(_ stage: StepPlan.Stage) {
        switch stage {
        case .forward(let l, let split):
            let layer = tiled[l]!
            guard
                let tile = split.tile(worker, rows: rankRows.count, columns: layer.outputWidth, align: StepPlan.align)
            else { return }
            let tileRows = offset(tile.rows)
            let (x, y) = (buffers.output(l - 1, tileRows), buffers.output(l, tileRows))
            if plan.packsWeights, let packed = buffers.packedWeights(l, .forward) {
                layer.forwardTile(x, y, columns: tile.columns, packedWeights: packed, workspace: workspace)
            } else {
                layer.forwardTile(x, y, columns: tile.columns, workspace: workspace)
            }
        case .rowForward(let l):
            guard !rows.isEmpty else { return }
            model.layers[l].forward(
                buffers.output(l - 1, rows), buffers.output(l, rows), pass: pass, workspace: workspace)
        case .activationGradient(let l):
            guard !rows.isEmpty else { return }
            tiled[l]!.activationGradient(y: buffers.output(l, rows), dy: buffers.gradient(l, rows))
        case .inputGradient(let l, let split):
            let layer = tiled[l]!
            guard
                let tile = split.tile(worker, rows: rankRows.count, columns: layer.inputWidth, align: StepPlan.align)
            else { return }
            let tileRows = offset(tile.rows)
            let (x, dz, dx) = (
                buffers.output(l - 1, tileRows), buffers.gradient(l, tileRows), buffers.gradient(l - 1, tileRows)
            )
            if plan.packsWeights, let packed = buffers.packedWeights(l, .inputGradient) {
                layer.inputGradientTile(
                    x: x, dz: dz, dx: dx, columns: tile.columns, packedWeights: packed, workspace: workspace)
            } else {
                layer.inputGradientTile(x: x, dz: dz, dx: dx, columns: tile.columns, workspace: workspace)
            }
        case .rowBackward(let l):
            guard !rows.isEmpty else { return }
            model.layers[l].backward(
                x: buffers.output(l - 1, rows), y: buffers.output(l, rows), dy: buffers.gradient(l, rows),
                dx: buffers.gradient(l - 1, rows), pass: pass, workspace: workspace)
        case .packGradients:
            // On several ranks, after the exchange: a share of every rank's rows (as the gather's).
            let rows = plan.ranks == 1 ? rows : gatherRows
            guard !rows.isEmpty else { return }
            for l in 0..<model.layers.count where tiled[l] != nil {
                guard let packed = buffers.packedGradient(l) else { continue }
                let dz = buffers.gradient(l, 0..<batchRows)
                packPanels(rows: rows, k: batchRows, n: dz.width, from: dz.base, ldb: dz.ld, into: packed)
            }
        case .packWeights:
            packOtherRanksWeights(arrived: true)
        case .gather, .loss, .parameters, .penalty, .gradientNorms, .clippedUpdate, .exchange, .barrier,
            .groupBarrier:
            preconditionFailure("the job runs \(stage) itself")
        }
    }

    /// The loss of this worker's rows and ∂L/∂(last output) scaled by 1/batch; true when their loss is not
    /// finite.
    func loss(targets: Targets) -> Bool {
        guard !rows.isEmpty else { return false }
        model.lossAndGradient(buffers, rows: rows, targets: targets, batchSize: batchRows, gradient: true)
        var sum: Float = 0
        for r in rows { sum += buffers.rowLoss[r] }
        return !sum.isFinite
    }

    /// This worker's blocks of every layer's weight gradient over the whole batch; with `update`, the optimizer
    /// step applied to exactly those parameters.
    func parameters(update: UpdateRule?) {
        for l in 0..<model.layers.count {
            guard let part = plan.parameterPart(l, worker: worker) else { continue }
            let (x, dy) = (buffers.output(l - 1, 0..<batchRows), buffers.gradient(l, 0..<batchRows))
            let layerUpdate = update?.advanced(by: model.offsets[l])
            if plan.packsGradients, let layer = tiled[l], let packed = buffers.packedGradient(l) {
                _ = layer.parameterGradient(
                    x: x, dy: dy, packedDy: packed, part: part, of: plan.parameterParts[l], update: layerUpdate,
                    workspace: workspace)
            } else {
                _ = model.layers[l].parameterGradient(
                    x: x, dy: dy, part: part, of: plan.parameterParts[l], update: layerUpdate, workspace: workspace)
            }
        }
        if update != nil { packWeights() }
    }

    /// Packs the weight blocks this worker updates into the forward products' packed copies (when the plan reads
    /// them): at the start of a job, and after each update, so the next forward pass reads current weights.
    func packWeights() {
        guard plan.packsWeights else { return }
        for l in 0..<model.layers.count {
            guard let layer = tiled[l], let part = plan.parameterPart(l, worker: worker) else { continue }
            pack(layer, l, part: part)
        }
    }

    /// Packs this worker's share (every `workers`-th) of the weight blocks that other ranks own, at the start of
    /// a job, or after they `arrived` in the parameter exchange (then not those that arrived packed).
    func packOtherRanksWeights(arrived: Bool = false) {
        guard plan.packsWeights && plan.ranks > 1 else { return }
        for l in 0..<model.layers.count {
            guard let layer = tiled[l] else { continue }
            if arrived && arrivesPacked[l] { continue }
            let parts = plan.parameterParts[l]
            for part in 0..<parts
            where part % plan.workers == worker && plan.owner(l, part: part) / plan.workers != plan.rank {
                pack(layer, l, part: part)
            }
        }
    }

    /// Packs part `part` of layer `l`'s weights into each packed copy its products read.
    private func pack(_ layer: TiledLayer, _ l: Int, part: Int) {
        if let packed = buffers.packedWeights(l, .forward) {
            layer.packWeights(.forward, part: part, of: plan.parameterParts[l], into: packed)
        }
        if let packed = buffers.packedWeights(l, .inputGradient) {
            layer.packWeights(.inputGradient, part: part, of: plan.parameterParts[l], into: packed)
        }
    }

    /// penalties[c] = l1·Σ|w| + l2·Σw² for this worker's chunks of regularized weights.
    func penalty(into penalties: UnsafeMutablePointer<Double>) {
        let w = model.parameters.pointer
        for (c, chunk) in plan.chunks.enumerated() where plan.chunkOwners[c] == plan.globalWorker(worker) {
            guard let r = chunk.regularizer else { continue }
            let sums = absAndSquareSums(w + chunk.range.lowerBound, count: chunk.range.count)
            penalties[c] = r.penalty(absSum: sums.abs, squareSum: sums.squares)
        }
    }

    /// squares[c] = Σv² for this worker's chunks of the gradient, v the gradient with its penalty's gradient
    /// added (what the update will see).
    func gradientNorms(into squares: UnsafeMutablePointer<Double>) {
        let (w, g) = (model.parameters.pointer, model.gradients.pointer)
        for (c, chunk) in plan.chunks.enumerated() where plan.chunkOwners[c] == plan.globalWorker(worker) {
            let o = chunk.range.lowerBound
            let r = chunk.regularizer
            squares[c] =
                absAndSquareSums(
                    g + o, count: chunk.range.count, penaltyOf: r == nil ? nil : w + o, l1: r?.l1 ?? 0, l2: r?.l2 ?? 0
                ).squares
        }
    }

    /// The update of the parameters whose gradients this worker computed, each tensor's gradient scaled as
    /// `clipping` says from the chunks' Σv² (added in chunk order by every worker alike).
    func clippedUpdate(_ rule: UpdateRule, clipping: GradientClipping, squares: UnsafePointer<Double>) {
        var global = 0.0
        for c in plan.chunks.indices { global += squares[c] }
        /// Updates the layer's parameters `local` (one tensor's block).
        func update(layer l: Int, _ local: Range<Int>) {
            guard !local.isEmpty else { return }
            let first = model.offsets[l] + local.lowerBound
            guard let tensor = plan.tensorChunks.first(where: { $0.parameters.contains(first) }) else { return }
            var tensorSquares = 0.0
            for c in tensor.chunks { tensorSquares += squares[c] }
            var r = rule.advanced(by: model.offsets[l]).regularized(plan.chunks[tensor.chunks.lowerBound].regularizer)
            r.gradientScale = clipping.scale(squares: tensorSquares, globalSquares: global)
            applyUpdate(r, local)
        }
        for l in 0..<model.layers.count {
            guard let part = plan.parameterPart(l, worker: worker) else { continue }
            let slices = model.layers[l].parameterSlices(part: part, of: plan.parameterParts[l])
            update(layer: l, slices.first)
            update(layer: l, slices.second)
        }
        packWeights()
    }
}
