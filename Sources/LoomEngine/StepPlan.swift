// StepPlan: who computes which part of a training step — the one place where the step's schedule is decided.
//
// Layers say what to compute (a dense layer's forward tile, input-gradient tile, its share of the weight
// gradient); the plan says which worker computes which tile, and where workers must wait for each other:
//
//   gather            rows of the batch, split among all W workers (row shards)
//   forward l         a dense layer's output Y = X·W + b, cut into rowGroups × columnGroups tiles
//   loss              per row (row shards)
//   activation grad   dz = dy ⊙ f'(y), per row (row shards)
//   input grad l      dX = dZ·Wᵀ, cut into tiles (a column block of dX is a block of W's rows)
//   parameters        each dense layer's weight gradient over the whole batch, in `parts` blocks of W's rows,
//                     with the optimizer update fused (owner computes)
// and, where the run asks for them:
//   penalty           the regularizers' penalty l1·Σ|w| + l2·Σw², per fixed chunk of the weights (after gather)
//   gradient norms    Σg² per fixed chunk of the gradients (clipnorm, global_clipnorm: after the parameters
//                     stage, which then only stores the gradients)
//   clipped update    each worker's parameters updated with the gradient scaled by the clipped norm
// A chunk is computed by the owner of its first parameter; its sums are added in chunk order, so the penalty
// and the norms are the same numbers for every worker count.
//
// Across R processes (ranks, over MPI) the batch is first cut into R row blocks, one per rank, and each rank's
// threads run the row and tile stages on its block; then
//   exchange activations   every rank receives the other ranks' rows of each layer's input and output
//                          gradient (and per-row losses), so each can compute weight gradients over all rows
//   parameters             the weight gradient is cut among all R × T workers (owner computes, as above)
//   exchange parameters    every rank receives the parameters the others updated
// so the arithmetic of every value is the same as on one process: the weights are bitwise identical for every
// R × T (and the input rows, which every rank can read itself, never travel).
//
// A product is cut by batch rows while every worker keeps enough rows for an efficient tile, by output columns
// (or both, a 2-D grid) when rows run short, and onto fewer workers when it is too small to share. Stages that
// work on the same row shards follow each other without waiting; any other change of cut waits at a barrier.
// Every output element is the same arithmetic whichever tile computes it (tested bit for bit in TileTests), so
// the plan changes speed only, never a result: `weights_digest` is the same for every worker count and cut.
import LoomConfig
import LoomKernels
import LoomNN

/// How one product's output is cut: `rowGroups × columnGroups` tiles; worker t computes tile t (row group
/// t / columnGroups, column group t % columnGroups); workers past the last tile skip the product.
public struct Split: Equatable, Sendable, CustomStringConvertible {
    /// Row blocks (of the batch).
    public var rowGroups: Int
    /// Column blocks (of the output).
    public var columnGroups: Int

    /// A cut into `rowGroups × columnGroups` tiles.
    public init(rowGroups: Int, columnGroups: Int) {
        self.rowGroups = rowGroups
        self.columnGroups = columnGroups
    }

    /// The number of tiles (workers with work).
    public var tiles: Int { rowGroups * columnGroups }

    /// Worker `w`'s rows of `n` and columns of `width`, or nil when it has no tile. Column blocks start on
    /// multiples of `align` (whole register panels) when the width allows.
    @inline(__always)
    public func tile(_ w: Int, rows n: Int, columns width: Int, align: Int) -> (rows: Range<Int>, columns: Range<Int>)?
    {
        guard w < tiles else { return nil }
        let (g, h) = (w / columnGroups, w % columnGroups)
        let rows = shard(n, part: g, of: rowGroups)
        let columns = alignedShard(width, part: h, of: columnGroups, align: align)
        return rows.isEmpty || columns.isEmpty ? nil : (rows, columns)
    }

    public var description: String {
        if columnGroups == 1 { return "\(rowGroups) row block\(rowGroups == 1 ? "" : "s")" }
        if rowGroups == 1 { return "\(columnGroups) column blocks" }
        return "\(rowGroups)×\(columnGroups) tiles"
    }
}

/// Part `part` of `parts` of 0..<n with inner boundaries on multiples of `align` when n ≥ parts · align.
@inline(__always)
public func alignedShard(_ n: Int, part: Int, of parts: Int, align: Int) -> Range<Int> {
    guard n >= parts * align, align > 1 else { return shard(n, part: part, of: parts) }
    func boundary(_ p: Int) -> Int { p == parts ? n : n * p / parts / align * align }
    return boundary(part)..<boundary(part + 1)
}

/// The schedule of one training step for a model, a batch size and a worker count.
public struct StepPlan: Sendable, CustomStringConvertible {
    /// How products are cut: `rows` is the row-only schedule (every product by batch rows, the weight gradient
    /// by W's rows over all workers); `auto` chooses per product with the tile model below; `widest` cuts every
    /// product into as many column blocks as it can (for tests: every tile path).
    public typealias Policy = SchedulePolicy

    /// One stage of the step; `barrier` waits for every worker, `groupBarrier` for the workers of one group.
    public enum Stage: Sendable, Equatable {
        /// Each worker gathers its rows of the batch.
        case gather
        /// A tiled layer's forward product, cut by `split`.
        case forward(layer: Int, split: Split)
        /// A row-wise layer's forward pass on each worker's rows.
        case rowForward(layer: Int)
        /// Each worker's rows' loss and its gradient.
        case loss
        /// A tiled layer's activation derivative on each worker's rows.
        case activationGradient(layer: Int)
        /// A row-wise layer's backward pass on each worker's rows.
        case rowBackward(layer: Int)
        /// A tiled layer's input-gradient product, cut by `split`.
        case inputGradient(layer: Int, split: Split)
        /// Each worker packs its rows of the tiled layers' ∂L/∂z into the kernels' panels, which every weight
        /// gradient block then reads as they lie (instead of each block streaming all of ∂L/∂z from memory).
        case packGradients
        /// The weight gradients (and the update) in their owners' blocks.
        case parameters
        /// After the parameter exchange (several ranks): each worker packs its share of the weight blocks that
        /// other ranks updated into the forward products' packed copies.
        case packWeights
        /// The regularizers' penalty, summed by chunk.
        case penalty
        /// The gradient norms for clipping, summed by chunk.
        case gradientNorms
        /// The update after clipping by norm.
        case clippedUpdate
        /// Worker 0 exchanges data with the other ranks (only with more than one rank).
        case exchange(Exchange)
        /// Every worker waits for every other.
        case barrier
        /// Each worker waits for the others of its group: workers `w / workers` alike, `workers` of them. The
        /// plan puts it only where, since the last full barrier, no two groups touch the same batch row.
        case groupBarrier(workers: Int)
    }

    /// What crosses between ranks, and when.
    public enum Exchange: Sendable, Equatable {
        /// Started early, while the stages after it compute: this rank's rows of one layer's input or output
        /// gradient leave for the other ranks without waiting (the activations exchange finishes them). Only
        /// where every worker of the rank has finished the stages before: after a barrier, or with one worker.
        case start(Activation)
        /// Before the weight gradients: the layers' inputs and output gradients of every rank's rows, the rows'
        /// losses, the penalty's chunk sums, and whether any rank saw a signal.
        case activations
        /// The gradient norms' chunk sums (clipnorm, global_clipnorm).
        case norms
        /// After the update: the parameters each rank updated.
        case parameters
    }

    /// A layer's activations that travel between ranks: its input, or the gradient of its output (∂L/∂z).
    public enum Activation: Sendable, Equatable {
        /// The input of layer `layer` (the output of the layer before it), final after that layer's forward.
        case input(layer: Int)
        /// ∂L/∂z of layer `layer`, final before its input-gradient product.
        case outputGradient(layer: Int)
    }

    /// A fixed block of one parameter tensor (global offsets `range`), the unit in which the penalty and the
    /// gradient norms are summed, whatever the worker and rank count: one row of a matrix (at most `chunkSize`
    /// values), one value of a vector. Parameters are owned by whole rows of a kernel and single bias values,
    /// so a chunk never straddles two owners: on several ranks, its owner holds all of its gradient.
    public struct Chunk: Sendable, Equatable {
        /// The tensor's index in `Sequential.namedParameters`, and its layer.
        public var tensor: Int
        /// The tensor's layer.
        public var layer: Int
        /// The chunk's parameters (global offsets).
        public var range: Range<Int>
        /// The tensor's regularizer, if any.
        public var regularizer: Regularizer?
    }
    /// The most values in one chunk of a matrix row.
    public static let chunkSize = 16384

    /// Threads per rank, ranks, and this process's rank.
    public let workers: Int
    /// The ranks training together.
    public let ranks: Int
    /// This process's rank.
    public let rank: Int
    /// Samples per step (all ranks together).
    public let batchSize: Int
    /// How products are cut.
    public let policy: Policy
    /// The stages in order, barriers included.
    public let stages: [Stage]
    /// Blocks of each layer's weight gradient (0 for layers without parameters), one per worker.
    public let parameterParts: [Int]
    /// The worker (among all ranks') that computes each block of each layer's weight gradient.
    public let parameterOwners: [[Int]]
    /// Each layer's block per worker (among all ranks'; layer-major, one flat array so a step reads it without
    /// touching a nested array), -1 where the worker computes none: `parameterPart`.
    let partOfWorker: [Int]
    /// Every parameter tensor cut into chunks, and the worker that sums each (the owner of its first value).
    public let chunks: [Chunk]
    /// The worker (among all ranks') that owns each chunk.
    public let chunkOwners: [Int]
    /// Each tensor's chunks (a range of `chunks`) and its parameters (global offsets), in tensor order.
    public let tensorChunks: [(chunks: Range<Int>, parameters: Range<Int>)]
    /// Whether the update waits for the gradient norms (the clipped-update stage).
    public let clipsByNorm: Bool
    /// Whether the step packs ∂L/∂z for the weight gradients (`packGradients`): every schedule but the row-only
    /// one, except on one rank where every product is in row shards of fewer than `packedRows` rows. Across ranks
    /// each worker packs a share of all the batch's rows, after the exchange that brings them.
    public let packsGradients: Bool
    /// Whether the forward products read the weights from packed copies that each block's owner refreshes right
    /// after its update (and every worker packs its blocks before a job's first step): where ∂L/∂z is packed
    /// (`packsGradients`). Across ranks, the blocks other ranks updated are packed after they arrive
    /// (`packWeights`).
    public let packsWeights: Bool
    /// The fewest rows per worker at which a step of row shards packs its operands: 64 (1 and 2 workers of a
    /// 128-row batch, where the packed forward runs faster than in place; 4 and 8 workers ran faster without).
    public static let packedRows = 64
    /// Layer descriptions for `description`.
    let layerNames: [String]

    /// Plans a step of `model` on `workers` workers (threads) of each of `ranks` processes for batches of up to
    /// `batchSize` rows; with `clipsByNorm` the update waits for the gradient norms (clipnorm, global_clipnorm).
    /// With several ranks, `earlyStarts` says which layers' activations start travelling as soon as they are
    /// final, while later stages compute (`Exchange.start`); the others travel in the activations exchange.
    public init(
        model: Sequential, batchSize: Int, workers: Int, policy: Policy = .auto, clipsByNorm: Bool = false,
        ranks: Int = 1, rank: Int = 0, earlyStarts: EarlyStarts = .large
    ) {
        precondition(workers >= 1 && batchSize >= 1 && ranks >= 1 && (0..<ranks).contains(rank))
        self.workers = workers
        self.ranks = ranks
        self.rank = rank
        self.batchSize = batchSize
        self.policy = policy
        // The rows a rank's threads share: its block of the batch.
        let rankRows = (batchSize + ranks - 1) / ranks
        let everyRow = Split(rowGroups: workers, columnGroups: 1)
        var stages: [Stage] = [.gather]
        let tensors = model.namedParameters
        if tensors.contains(where: { $0.regularizer != nil }) { stages.append(.penalty) }
        for (l, layer) in model.layers.enumerated() {
            if let tiled = layer as? TiledLayer {
                let split = StepPlan.split(
                    m: rankRows, n: tiled.outputWidth, k: tiled.inputWidth, workers: workers, policy: policy,
                    columns: tiled.splitsOutputColumns)
                stages.append(.forward(layer: l, split: split))
            } else {
                stages.append(.rowForward(layer: l))
            }
        }
        stages.append(.loss)
        for l in stride(from: model.layers.count - 1, through: 0, by: -1) {
            let layer = model.layers[l]
            if let tiled = layer as? TiledLayer {
                if !tiled.activationGradientIsFused { stages.append(.activationGradient(layer: l)) }
                if l > 0 {
                    let split = StepPlan.split(
                        m: rankRows, n: tiled.inputWidth, k: tiled.outputWidth, workers: workers, policy: policy,
                        columns: true)
                    stages.append(.inputGradient(layer: l, split: split))
                }
            } else if l > 0 {
                stages.append(.rowBackward(layer: l))
            }
        }
        if ranks > 1 { stages.append(.exchange(.activations)) }
        // Packed operands pay where a worker's products are long enough to reuse each packed panel many times,
        // or cut W's columns; a step of short row shards reads W and ∂L/∂z in place (the book's model on 4 and 8
        // workers: 3% and 6% faster a step without packing, the forward as fast).
        let rowShardsOnly = stages.allSatisfy { stage in
            switch stage {
            case .forward(_, let split), .inputGradient(_, let split): split.columnGroups == 1
            default: true
            }
        }
        packsGradients =
            policy != .rows && model.layers.contains { $0 is TiledLayer && $0.parameterCount > 0 }
            && (ranks > 1 || !rowShardsOnly || rankRows / workers >= StepPlan.packedRows)
        if packsGradients { stages.append(.packGradients) }
        packsWeights = packsGradients
        stages.append(.parameters)
        if clipsByNorm {
            stages.append(.gradientNorms)
            if ranks > 1 { stages.append(.exchange(.norms)) }
            stages.append(.clippedUpdate)
        }
        if ranks > 1 { stages.append(.exchange(.parameters)) }
        if ranks > 1 && packsWeights { stages.append(.packWeights) }
        self.clipsByNorm = clipsByNorm
        // Barriers: wherever a stage may read what another worker wrote in the stage before. (With several
        // ranks each worker gathers and packs a share of the whole batch, not of its rank's block: a barrier
        // follows.)
        func local(_ stage: Stage) -> Bool {
            StepPlan.rowLocal(stage, everyRow) && !(ranks > 1 && (stage == .gather || stage == .packGradients))
        }
        var withBarriers: [Stage] = []
        for stage in stages {
            if let last = withBarriers.last, !(local(last) && local(stage)) {
                withBarriers.append(.barrier)
            }
            withBarriers.append(stage)
        }
        withBarriers.append(.barrier)  // the next step's forward reads the updated weights
        if ranks == 1 { withBarriers = StepPlan.grouping(withBarriers, workers: workers) }
        let smallest: Int? =
            switch earlyStarts {
            case .none: nil
            case .large: StepPlan.earlyStartBytes
            case .all: 0
            }
        self.stages =
            if ranks > 1, let smallest {
                StepPlan.startingEarly(
                    withBarriers, model: model, workers: workers, rankRows: rankRows, smallestBytes: smallest)
            } else {
                withBarriers
            }
        parameterOwners = StepPlan.parameterBlocks(
            model: model, batchSize: batchSize, workers: workers * ranks, policy: policy, wraps: ranks == 1,
            packsWeights: packsWeights)
        parameterParts = parameterOwners.map(\.count)
        var partOfWorker = [Int](repeating: -1, count: model.layers.count * workers * ranks)
        for (l, owners) in parameterOwners.enumerated() {
            for (part, owner) in owners.enumerated() { partOfWorker[l * workers * ranks + owner] = part }
        }
        self.partOfWorker = partOfWorker
        chunks = StepPlan.chunks(model)
        var spans: [(chunks: Range<Int>, parameters: Range<Int>)] = []
        for (c, chunk) in chunks.enumerated() {
            if let last = spans.last, chunks[last.chunks.lowerBound].tensor == chunk.tensor {
                spans[spans.count - 1] = (
                    last.chunks.lowerBound..<c + 1, last.parameters.lowerBound..<chunk.range.upperBound
                )
            } else {
                spans.append((c..<c + 1, chunk.range))
            }
        }
        tensorChunks = spans
        chunkOwners = chunks.map { [parameterOwners] chunk in
            let local = chunk.range.lowerBound - model.offsets[chunk.layer]
            let owners = parameterOwners[chunk.layer]
            let part = owners.indices.first {
                let slices = model.layers[chunk.layer].parameterSlices(part: $0, of: owners.count)
                return slices.first.contains(local) || slices.second.contains(local)
            }
            return part.map { owners[$0] } ?? 0
        }
        layerNames = model.layers.map { "\($0.typeName.lowercased()) \($0.inputWidth)→\($0.outputWidth)" }
    }

    /// Which activations start travelling early (several ranks).
    public enum EarlyStarts: Sendable {
        /// None: all travel in the activations exchange.
        case none
        /// Those whose block (a rank's rows) holds at least `earlyStartBytes`: a small block costs more as a
        /// message of its own than it can hide (measured over shared memory on the book's model).
        case large
        /// Every one that can (for tests: every start path).
        case all
    }

    /// The smallest block (one rank's rows of one activation) that `EarlyStarts.large` starts early.
    public static let earlyStartBytes = 512 * 1024

    /// `stages` with the activations of the layers with parameters started early: a layer's input before its
    /// forward product and its output gradient before its input-gradient product, where every worker has
    /// finished the stages before (a barrier precedes, or one worker runs them all), when a rank's block of
    /// `rankRows` rows holds at least `smallestBytes`. Nothing waits for a start, so it adds no barrier; what
    /// does not start early travels in the activations exchange as before.
    static func startingEarly(
        _ stages: [Stage], model: Sequential, workers: Int, rankRows: Int, smallestBytes: Int
    ) -> [Stage] {
        /// Whether layer `l`'s activation `width` floats wide starts early at a point that is `settled`.
        func starts(_ l: Int, width: Int, settled: Bool) -> Bool {
            settled && model.layers[l].parameterCount > 0 && rankRows * width * 4 >= smallestBytes
        }
        var out: [Stage] = []
        for stage in stages {
            let settled = workers == 1 || out.last == .barrier
            switch stage {
            case .forward(let l, _) where l > 0 && starts(l, width: model.widths[l], settled: settled):
                out.append(.exchange(.start(.input(layer: l))))
            case .inputGradient(let l, _) where starts(l, width: model.widths[l + 1], settled: settled):
                out.append(.exchange(.start(.outputGradient(layer: l))))
            default: break
            }
            out.append(stage)
        }
        return out
    }

    /// Every tensor of `model`, in order, in chunks: matrix rows (of at most `chunkSize` values), vector values.
    static func chunks(_ model: Sequential) -> [Chunk] {
        var chunks: [Chunk] = []
        var index = 0
        for (l, layer) in model.layers.enumerated() {
            for tensor in layer.parameterTensors {
                let range = model.offsets[l] + tensor.offset..<model.offsets[l] + tensor.offset + tensor.count
                let row = tensor.shape.count >= 2 ? min(chunkSize, tensor.shape.last!) : 1
                for start in stride(from: range.lowerBound, to: range.upperBound, by: row) {
                    let end = min(start + row, range.upperBound)
                    chunks.append(Chunk(tensor: index, layer: l, range: start..<end, regularizer: tensor.regularizer))
                }
                index += 1
            }
        }
        return chunks
    }

    /// Who computes each layer's weight gradient (and update): each layer's blocks of W's rows, and the worker of
    /// each block (at most one block of a layer per worker). Either every layer is shared by all workers, or —
    /// when that leaves small layers in slivers — each layer gets its own workers in proportion to its cost, or
    /// (on one rank) the big layers divide the workers and each small one rides on the least loaded of them;
    /// the cheapest in the tile model wins. Without `wraps` a layer's blocks lie on consecutive workers, shared
    /// ones from worker 0 (so each rank's blocks of a layer are contiguous).
    static func parameterBlocks(
        model: Sequential, batchSize: Int, workers: Int, policy: Policy, wraps: Bool = true, packsWeights: Bool = true
    ) -> [[Int]] {
        var owners = tiledParameterBlocks(
            model: model, batchSize: batchSize, workers: workers, policy: policy, wraps: wraps,
            packsWeights: packsWeights)
        // A layer with parameters that is not tiled (a CustomLayer: its tape's gradient is not cut) is one block,
        // on one worker: the last ones, whose tiled blocks are fewest when blocks start at worker 0.
        for (l, layer) in model.layers.enumerated() where !(layer is TiledLayer) && layer.parameterCount > 0 {
            owners[l] = [(workers - 1 - l % workers + workers) % workers]
        }
        return owners
    }

    /// `parameterBlocks` for the tiled layers (no blocks for the others). With `packsWeights` each block's owner
    /// also refreshes the packed copies of its weights (the forward product's; past layer 0 the input gradient's).
    static func tiledParameterBlocks(
        model: Sequential, batchSize: Int, workers: Int, policy: Policy, wraps: Bool, packsWeights: Bool
    ) -> [[Int]] {
        let layers = model.layers.map { layer -> (m: Int, n: Int)? in
            guard layer is TiledLayer, layer.parameterCount > 0 else { return nil }
            return (layer.inputWidth, layer.outputWidth)
        }
        if policy == .rows {
            return layers.map { $0 == nil ? [] : Array(0..<workers) }
        }
        // What refreshing a weight's packed copies costs, per layer.
        let packing = model.layers.enumerated().map { l, layer -> Double in
            guard packsWeights, let tiled = layer as? TiledLayer else { return 0 }
            return (tiled.packedWeightsCount(.forward) > 0 ? packCost.forward : 0)
                + (l > 0 && tiled.packedWeightsCount(.inputGradient) > 0 ? packCost.inputGradient : 0)
        }
        /// Modelled cost of one block of `parts` of a layer's weight gradient, its update and packing included.
        func cost(_ l: Int, _ parts: Int) -> Double {
            let shape = layers[l]!
            let rows = (shape.m + parts - 1) / parts
            return weightGradientCost(rows: rows, n: shape.n, k: batchSize)
                + Double(rows * shape.n) * (updateCost + packing[l])
        }
        let present = layers.indices.filter { layers[$0] != nil }
        var candidates: [Placement] = []
        // Shared: every layer over all workers (each layer's blocks starting where the previous one's ended).
        var shared = Placement(layers: layers.count, workers: workers)
        for l in present {
            let parts = StepPlan.bestParts(layers[l]!, workers: workers) { cost(l, $1) }
            shared.place(l, on: (0..<parts).map { ((wraps ? shared.next : 0) + $0) % workers }, cost: cost(l, parts))
        }
        candidates.append(shared)
        if present.count > 1 && workers >= present.count {
            // Disjoint: the workers divided among the layers in proportion to their cost on one worker.
            var disjoint = Placement(layers: layers.count, workers: workers)
            disjoint.divide(present, rows: { layers[$0]!.m }, cost: cost)
            candidates.append(disjoint)
        }
        let fair = present.reduce(0) { $0 + cost($1, 1) } / Double(workers)
        let small = present.filter { cost($0, 1) < 2 * fair }
        let big = present.filter { cost($0, 1) >= 2 * fair }
        if wraps && !small.isEmpty && !big.isEmpty && workers >= big.count {
            // Riding: the big layers divide all the workers in proportion to their cost; each small layer (worth
            // less than two workers' fair share) is cut into the blocks that keep the busiest worker least busy,
            // one each on the least loaded workers. One rank only: a rank's blocks of a layer need not be
            // contiguous.
            var riding = Placement(layers: layers.count, workers: workers)
            riding.divide(big, rows: { layers[$0]!.m }, cost: cost)
            for l in small.sorted(by: { cost($0, 1) > cost($1, 1) }) {
                let lightest = (0..<workers).sorted { (riding.load[$0], $0) < (riding.load[$1], $1) }
                let busiest = riding.load.max() ?? 0
                let parts = (1...min(workers, layers[l]!.m)).min { a, b in
                    (max(busiest, riding.load[lightest[a - 1]] + cost(l, a)), a)
                        < (max(busiest, riding.load[lightest[b - 1]] + cost(l, b)), b)
                }!
                riding.place(l, on: lightest.prefix(parts).sorted(), cost: cost(l, parts))
            }
            candidates.append(riding)
        }
        // The cheapest; on a tie the earlier (shared, then disjoint).
        return candidates.min { $0.load.max()! < $1.load.max()! }!.owners
    }

    /// Workers for each of `layers` in proportion to its cost on one worker, at least one each (`workers` ≥
    /// `layers.count`), every worker given.
    static func divide(_ workers: Int, among layers: [Int], cost: (Int, Int) -> Double) -> [Int] {
        let whole = layers.map { cost($0, 1) }
        let total = whole.reduce(0, +)
        var counts = whole.map { max(1, Int((Double(workers) * $0 / total).rounded(.down))) }
        while counts.reduce(0, +) > workers, let i = counts.indices.max(by: { counts[$0] < counts[$1] }) {
            counts[i] -= 1
        }
        while counts.reduce(0, +) < workers {
            // Give the next worker to the layer whose blocks are slowest now.
            let i = counts.indices.max { cost(layers[$0], counts[$0]) < cost(layers[$1], counts[$1]) }!
            counts[i] += 1
        }
        return counts
    }

    /// A candidate placement of the weight-gradient blocks: each layer's owners and each worker's modelled load.
    struct Placement {
        var owners: [[Int]]
        var load: [Double]
        /// The first worker not yet given a block, for placements that fill workers in order.
        var next = 0

        init(layers: Int, workers: Int) {
            owners = [[Int]](repeating: [], count: layers)
            load = [Double](repeating: 0, count: workers)
        }

        /// Gives layer `l` one block per worker of `workers`, each costing `cost`.
        mutating func place(_ l: Int, on workers: [Int], cost: Double) {
            owners[l] = workers
            for w in workers { load[w] += cost }
            next += workers.count
        }

        /// Gives `layers` consecutive runs of all the workers, in proportion to their cost (`StepPlan.divide`):
        /// a block on each of a layer's workers, or one per row of W where it has fewer `rows` than workers.
        mutating func divide(_ layers: [Int], rows: (Int) -> Int, cost: (Int, Int) -> Double) {
            for (l, count) in zip(layers, StepPlan.divide(load.count, among: layers, cost: cost)) {
                let parts = min(count, rows(l))
                place(l, on: Array(next..<next + parts), cost: cost(l, parts))
                next += count - parts
            }
        }
    }

    /// The number of blocks (≤ workers, one per worker) whose largest block is cheapest in the model.
    static func bestParts(_ shape: (m: Int, n: Int), workers: Int, cost: ((m: Int, n: Int), Int) -> Double) -> Int {
        var best = 1
        for p in 1...max(1, min(workers, shape.m)) where cost(shape, p) < cost(shape, best) { best = p }
        return best
    }

    /// Stages that each worker runs on its own row shard of the batch (all W of them).
    static func rowLocal(_ stage: Stage, _ everyRow: Split) -> Bool {
        switch stage {
        case .gather, .rowForward, .loss, .activationGradient, .rowBackward, .packGradients: true
        // The penalty reads only the weights, which nothing writes before the parameters stage.
        case .penalty: true
        case .forward(_, let split), .inputGradient(_, let split): split == everyRow
        case .parameters, .packWeights, .gradientNorms, .clippedUpdate, .exchange, .barrier, .groupBarrier: false
        }
    }

    /// The part of layer `layer`'s weight gradient worker `w` of this rank computes, if any.
    @inline(__always) public func parameterPart(_ layer: Int, worker w: Int) -> Int? {
        let part = partOfWorker[layer * workers * ranks + globalWorker(w)]
        return part >= 0 ? part : nil
    }

    /// Worker `w` of this rank among the workers of all ranks.
    @inline(__always) public func globalWorker(_ w: Int) -> Int { rank * workers + w }

    /// The worker (among all ranks') that computes part `part` of layer `layer`'s weight gradient.
    public func owner(_ layer: Int, part: Int) -> Int { parameterOwners[layer][part] }

    /// The rows of a batch of `n` that rank `r` computes.
    @inline(__always) public func rankRows(_ n: Int, rank r: Int) -> Range<Int> { shard(n, part: r, of: ranks) }

    /// Barriers a step waits at, full and group ones.
    public var barriers: Int { stages.filter(StepPlan.isBarrier).count }

    /// Dissemination rounds a step's barriers take: ⌈log₂ W⌉ for a full barrier, ⌈log₂ G⌉ for a group of G.
    public var barrierRounds: Int {
        stages.reduce(0) { rounds, stage in
            switch stage {
            case .barrier: rounds + StepPlan.barrierRounds(workers)
            case .groupBarrier(let g): rounds + StepPlan.barrierRounds(g)
            default: rounds
            }
        }
    }

    /// The size of the groups the step's group barriers wait within (nil: it has none).
    public var groupSize: Int? {
        for stage in stages { if case .groupBarrier(let size) = stage { return size } }
        return nil
    }

    /// Whether `stage` is a barrier, full or group.
    public static func isBarrier(_ stage: Stage) -> Bool {
        switch stage {
        case .barrier, .groupBarrier: true
        default: false
        }
    }

    // MARK: Group barriers

    /// `stages` with the barriers inside each run of row-structured stages (between two full barriers that a
    /// stage outside the run needs) made group barriers, where the run allows a group smaller than all workers.
    /// Within a run each stage cuts the batch into R row groups of W / R workers each (row shards: R = W; a tile
    /// grid R × C with R·C = W, worker w in row group w / C), and shards are `shard(n, part:, of:)`, so with
    /// R_min the fewest row groups of the run and every R a multiple of it, worker w touches only rows of
    /// `shard(n, part: w / G, of: R_min)`, G = W / R_min, for any batch of n rows: no row is touched by two
    /// groups, and a barrier among G workers orders everything a worker reads after it. Coarser groups (a
    /// multiple of G) are as good, so one size serves every run of the step: the least common multiple of the
    /// runs' sizes, where it is smaller than W (the step then needs one group barrier object).
    static func grouping(_ stages: [Stage], workers: Int) -> [Stage] {
        /// The row groups a stage cuts the batch into (nil: not row-structured; 0: touches no batch row).
        func rowGroups(_ stage: Stage) -> Int? {
            switch stage {
            case .gather, .rowForward, .loss, .activationGradient, .rowBackward, .packGradients: workers
            case .penalty: 0  // reads only the weights, which nothing writes before the parameters stage
            case .forward(_, let split), .inputGradient(_, let split):
                split.tiles == workers ? split.rowGroups : nil
            default: nil
            }
        }
        // Each run's inner barriers (its first and last stages keep theirs: stages outside the run need them),
        // and the group size the run allows (W where it allows none).
        var runs: [(barriers: [Int], size: Int)] = []
        var runStart = 0
        while runStart < stages.count {
            var runEnd = runStart
            while runEnd < stages.count && (stages[runEnd] == .barrier || rowGroups(stages[runEnd]) != nil) {
                runEnd += 1
            }
            let run = stages[runStart..<runEnd]
            let groups = run.compactMap(rowGroups).filter { $0 > 0 }
            if let first = run.firstIndex(where: { $0 != .barrier }),
                let last = run.lastIndex(where: { $0 != .barrier })
            {
                let fewest = groups.min() ?? 1
                let nested = groups.allSatisfy { $0 % fewest == 0 }
                let inner = (first..<last).filter { stages[$0] == .barrier }
                if !inner.isEmpty { runs.append((inner, nested ? workers / fewest : workers)) }
            }
            runStart = runEnd + 1
        }
        func gcd(_ a: Int, _ b: Int) -> Int { b == 0 ? a : gcd(b, a % b) }
        let size = runs.reduce(1) { $0 / gcd($0, $1.size) * $1.size }
        guard !runs.isEmpty, size < workers, workers % size == 0 else { return stages }
        var out = stages
        for run in runs { for i in run.barriers { out[i] = .groupBarrier(workers: size) } }
        return out
    }

    // MARK: The tile model

    /// Column blocks start on whole register panels (two vectors).
    public static var align: Int { 2 * vecLanes }

    /// Rows (and columns) of a tile at which streaming the other operand halves its efficiency — more when that
    /// operand is too big for a core's caches (`cacheBytes`) and streams from memory; the fixed cost of a product
    /// call, of one round of a barrier, and of updating one parameter; all in multiply-adds at the full GEMM
    /// rate (so they hold across CPUs of different speeds). Calibrated with `loom bench project`: on Zen 3, whose
    /// 512 KB L2 cannot hold the book's 392 × 512 B block, 6 rows; a tile whose block fits this core's L2
    /// (`l2Bytes`) streams it again for almost nothing (`l2Overhead`).
    static let cachedOverhead = (rows: 6.0, columns: 12.0)
    /// A B block in L2 costs a strip 0.5 rows to stream again. Zen 4 (1 MB L2), the book's forward: row shards of
    /// 32, 16 and 8 rows ran at 0.98, 0.99 and 0.94 of the whole product's rate, which 6 priced at 0.84 to 0.6,
    /// putting 2×2 to 4×8 tiles in their place, 1–4% slower.
    static let l2Overhead = 0.5
    static let streamedOverhead = 32.0
    static let cacheBytes = 1 << 20
    /// This core's L2 cache (bytes), from sysfs; 512 KB where it cannot be read.
    public static let l2Bytes = Topology.cacheBytes(level: 2) ?? 512 << 10
    /// The L3 cache this core shares (bytes), from sysfs; 0 where it cannot be read. A B of at most a quarter of
    /// it (`efficiency`) stays there while every worker's strips stream it.
    public static let l3Bytes = Topology.cacheBytes(level: 3) ?? 0
    static let callCost = 60_000.0
    static let barrierRoundCost = 15_000.0
    static let updateCost = 6.0
    /// Refreshing one weight's packed copy after its update, for the forward product (rows of W into panels) and
    /// for the input gradient (W transposed into panels). `loom bench project --stages`, wide model, 64 workers,
    /// Zen 4: a 46-row block's forward copy 33 µs, a 44-row block's two copies 87–104 µs; 0.35 and 0.7 ns a
    /// weight, 20 and 40 multiply-adds' time at this core's GEMM rate.
    static let packCost = (forward: 20.0, inputGradient: 40.0)
    /// Reading one value of a narrow weight gradient's input from memory: the wide model's 2048 × 10 gradient,
    /// 512 deep, cut 3 ways on 32 workers, took 220 µs a block of 683 rows in `loom bench project` (Zen 4) —
    /// 0.6 ns a value, against 100 µs of product.
    static let narrowReadCost = 20.0

    /// The modelled efficiency of an m × n tile, k deep, on a core with `l2Bytes` of L2 cache that shares
    /// `l3Bytes` of L3, relative to a large product: register-tile padding of its rows (the kernel's strips) and
    /// columns (whole panels), and the cost of streaming the other operand one K block at a time, as the kernel
    /// does (its kc × n block of B over the tile's rows, its m × kc block of A over its columns).
    public static func efficiency(
        m: Int, n: Int, k: Int, l2Bytes: Int = StepPlan.l2Bytes, l3Bytes: Int = StepPlan.l3Bytes
    ) -> Double {
        guard m > 0 && n > 0 else { return 0 }
        var computed = 0
        var left = m
        while left > 0 {
            let h = gemmStripHeight(left)
            computed += h
            left -= min(h, left)
        }
        let panel = align
        let columns = (n + panel - 1) / panel * panel
        let rowFill = Double(m) / Double(computed)
        let columnFill = Double(n) / Double(columns)
        // The kernel keeps one K block of each operand in cache at a time, not all k of it.
        let depth = gemmKBlockDepth(k)
        let bBlock = depth * n * 4
        // A B block that fits no core cache, but a whole B that stays in the shared L3 (the wide model's
        // weight-gradient blocks: ∂L/∂z, 4 MB; blocks of 46 rows ran at 0.96 of the one-worker rate, which 32
        // rows priced at 0.59, so that the placement traded balance for long blocks), costs the cached price.
        let rowOverhead =
            bBlock <= l2Bytes
            ? l2Overhead
            : bBlock <= cacheBytes || k * n * 4 <= l3Bytes / 4 ? cachedOverhead.rows : streamedOverhead
        let columnOverhead = depth * m * 4 > cacheBytes ? streamedOverhead : cachedOverhead.columns
        // Streaming B is paid per strip the kernel computes, padding rows included (a 2-row tile is a 4-row strip),
        // and streaming A per panel, padding columns included.
        let rowStreaming = Double(computed) / (Double(computed) + rowOverhead)
        let columnStreaming = Double(columns) / (Double(columns) + columnOverhead)
        return rowFill * columnFill * rowStreaming * columnStreaming
    }

    /// Modelled cost of an m × n × k tile, in multiply-adds at the full GEMM rate, on a core with `l2Bytes` of L2
    /// cache.
    public static func tileCost(m: Int, n: Int, k: Int, l2Bytes: Int = StepPlan.l2Bytes) -> Double {
        Double(m * n * k) / efficiency(m: m, n: n, k: k, l2Bytes: l2Bytes) + callCost
    }

    /// Modelled cost of the product of a block of `rows` rows of an n-wide weight gradient, k deep. One at most a
    /// vector wide is computed as its transpose (n rows, `rows` columns, `gemmTransposedBlockColumns` at a time)
    /// whose B, the layer's input, is read once by those few rows: it streams from memory (`narrowReadCost` a
    /// value) and, read by so few rows, is priced as not fitting L2.
    static func weightGradientCost(rows: Int, n: Int, k: Int) -> Double {
        guard n <= vecLanes else { return tileCost(m: rows, n: n, k: k) }
        let block = gemmTransposedBlockColumns
        let (whole, rest) = rows.quotientAndRemainder(dividingBy: block)
        return Double(whole) * tileCost(m: n, n: block, k: k, l2Bytes: 0)
            + (rest > 0 ? tileCost(m: n, n: rest, k: k, l2Bytes: 0) : 0) + Double(rows * k) * narrowReadCost
    }

    /// The barrier rounds of `workers` workers (the dissemination barrier's ⌈log₂ W⌉).
    static func barrierRounds(_ workers: Int) -> Int {
        var r = 0
        while 1 << r < workers { r += 1 }
        return r
    }

    /// The cut of an m × n product (k deep) among up to `workers` workers: the one with the cheapest largest
    /// tile, where any cut other than the row shards pays for the two barriers around it.
    public static func split(m: Int, n: Int, k: Int, workers: Int, policy: Policy, columns: Bool) -> Split {
        let rowsOnly = Split(rowGroups: min(workers, m), columnGroups: 1)
        if policy == .rows || workers == 1 { return rowsOnly }
        let maxColumns = columns ? max(1, n / align) : 1
        if policy == .widest {
            let c = min(workers, maxColumns)
            return Split(rowGroups: max(1, min(m, workers / c)), columnGroups: c)
        }
        let barrierCost = 2 * Double(barrierRounds(workers)) * barrierRoundCost
        func cost(_ s: Split) -> Double {
            let mt = (m + s.rowGroups - 1) / s.rowGroups
            let nt = s.columnGroups == 1 ? n : min(n, (n / s.columnGroups + align - 1) / align * align)
            return tileCost(m: mt, n: nt, k: k) + (s == rowsOnly && s.tiles == workers ? 0 : barrierCost)
        }
        var best = rowsOnly
        var bestCost = cost(rowsOnly)
        for c in 1...min(workers, maxColumns) {
            for r in 1...min(m, workers / c) {
                let candidate = Split(rowGroups: r, columnGroups: c)
                let t = cost(candidate)
                // Row shards are kept unless another cut is clearly (5%) cheaper: they share no data between
                // workers, which the model does not price.
                let margin = best == rowsOnly ? 0.95 : 1.0
                if t < bestCost * margin || (t == bestCost && candidate.tiles < best.tiles) {
                    best = candidate
                    bestCost = t
                }
            }
        }
        return best
    }

    /// Worker numbers as sorted runs: "0–17, 40, 62–63".
    static func spans(_ workers: [Int]) -> String {
        var runs: [ClosedRange<Int>] = []
        for w in workers.sorted() {
            if let last = runs.last, last.upperBound + 1 == w {
                runs[runs.count - 1] = last.lowerBound...w
            } else {
                runs.append(w...w)
            }
        }
        return runs.map { $0.count == 1 ? "\($0.lowerBound)" : "\($0.lowerBound)–\($0.upperBound)" }
            .joined(separator: ", ")
    }

    /// The plan as `loom plan` prints it.
    public var description: String {
        var lines = [
            "Step plan for \(workers) worker\(workers == 1 ? "" : "s"), batch \(batchSize) (\(policy.rawValue)):"
        ]
        var barrier = 0
        for stage in stages {
            switch stage {
            case .gather: lines.append("  gather        row shards")
            case .forward(let l, let s): lines.append("  forward \(l)     \(layerNames[l]): \(s)")
            case .rowForward(let l): lines.append("  forward \(l)     \(layerNames[l]): row shards")
            case .loss: lines.append("  loss          row shards")
            case .activationGradient(let l): lines.append("  dz \(l)          row shards")
            case .rowBackward(let l): lines.append("  backward \(l)    \(layerNames[l]): row shards")
            case .inputGradient(let l, let s): lines.append("  dx \(l)          \(layerNames[l]): \(s)")
            case .packWeights:
                lines.append("  pack W        the weight blocks other ranks updated, into the forward's panels")
            case .packGradients:
                lines.append("  pack dz       row shards: ∂L/∂z into the kernels' panels for the weight gradients")
            case .parameters:
                let parts = parameterOwners.enumerated().filter { !$0.element.isEmpty }.map { l, owners in
                    "layer \(l): \(owners.count) block\(owners.count == 1 ? "" : "s") of W's rows "
                        + "(worker\(owners.count == 1 ? "" : "s") \(StepPlan.spans(owners)))"
                }
                let what = stages.contains(.clippedUpdate) ? "weight gradient" : "weight gradient + update"
                lines.append("  parameters    \(what), " + parts.joined(separator: ", "))
            case .penalty: lines.append("  penalty       \(chunks.count) chunks of the weights, by their owners")
            case .gradientNorms: lines.append("  norms         Σg² of \(chunks.count) chunks, by their owners")
            case .clippedUpdate:
                lines.append("  update        the parameters' owners, gradients scaled to the clip norm")
            case .exchange(.activations):
                let started = stages.contains { if case .exchange(.start) = $0 { true } else { false } }
                lines.append(
                    "  exchange      layer inputs and output gradients of every rank's rows (MPI"
                        + (started ? "; finishes those started)" : ")"))
            case .exchange(.start(.input(let l))):
                lines.append(
                    "  start         layer \(l)'s input to the other ranks (MPI, while the next stages compute)")
            case .exchange(.start(.outputGradient(let l))):
                lines.append(
                    "  start         layer \(l)'s ∂L/∂z to the other ranks (MPI, while the next stages compute)")
            case .exchange(.norms): lines.append("  exchange      gradient norms' chunk sums (MPI)")
            case .exchange(.parameters): lines.append("  exchange      the parameters each rank updated (MPI)")
            case .barrier:
                barrier += 1
                lines.append("  ── barrier \(barrier)")
            case .groupBarrier(let size):
                barrier += 1
                lines.append("  ── barrier \(barrier) within groups of \(size) workers")
            }
        }
        return lines.joined(separator: "\n")
    }
}
