// Exchange: what the ranks of a job send each other during a step (StepPlan.Exchange), run by worker 0 of each
// rank between two barriers. Every buffer already sits where the step reads it: each rank's block goes out from,
// and the others' blocks land in, the same activation, loss or parameter buffer (MPI_Allgatherv in place), so
// nothing is copied and a step allocates nothing. Chunk sums (penalty, gradient norms) are added over ranks with
// an allreduce in which each chunk is non-zero on its owner's rank only: adding zeros is exact, so the sums are
// the same numbers as on one process.
//
// A layer whose only packed copy is its forward product's (the first Dense layer: no input gradient) sends its
// updated weight rows packed, straight from that copy into the others' copies (an MPI datatype of the rows'
// ranges): the forward reads them as they arrive, and no rank packs another's rows again every step. The rows
// as they lie are rebuilt from the packed copy once per job (`unpackArrived`), before anything reads them.
import CSupport
import LoomNN

/// The counts and displacements of one rank-blocked buffer, and the layers whose activations travel.
final class Exchanger: @unchecked Sendable {
    // Sendable: used by worker 0 only, inside a job (its buffers are preallocated and never shared).
    let communicator: Communicator
    let plan: StepPlan
    let model: Sequential
    let buffers: ActivationBuffers
    private let counts: UnsafeMutablePointer<Int32>
    private let displacements: UnsafeMutablePointer<Int32>
    /// Layers with parameters: their inputs and output gradients travel, and their parameters.
    private let layers: [Int]
    /// Per layer with parameters: each rank's contiguous range of the layer's kernel and of its bias, and, when
    /// the kernel travels packed, each rank's datatype over the forward's packed copy and this rank's floats.
    private let parameterBlocks: [(layer: Int, kernel: [Range<Int>], bias: [Range<Int>], packed: PackedBlocks?)]
    /// Seconds worker 0 spent in exchanges (starting, finishing or waiting: the communication a step waits
    /// for), the bytes this rank sent (its blocks, once per collective) and those of them started early, since
    /// the trainer was built; read by the main thread between jobs.
    private(set) var seconds = 0.0
    private(set) var bytesSent = 0
    private(set) var bytesStarted = 0
    /// The activations the plan starts early (`StepPlan.Exchange.start`): the activations exchange finishes
    /// them instead of sending them.
    private let startsEarly: [StepPlan.Activation]
    private(set) var steps = 0
    /// Speaks for this rank if a stop signal finds it waiting on ranks that no longer answer.
    let watch: StallWatch
    /// Whether the step has a penalty to sum over ranks (some layer has a regularizer).
    let sumsPenalties: Bool

    init(communicator: Communicator, plan: StepPlan, model: Sequential, buffers: ActivationBuffers) {
        (self.communicator, self.plan, self.model, self.buffers) = (communicator, plan, model, buffers)
        watch = StallWatch(rank: communicator.rank, host: communicator.host)
        sumsPenalties = plan.stages.contains(.penalty)
        counts = .allocate(capacity: communicator.size)
        displacements = .allocate(capacity: communicator.size)
        layers = model.layers.indices.filter { plan.parameterParts[$0] > 0 }
        startsEarly = plan.stages.compactMap { if case .exchange(.start(let a)) = $0 { a } else { nil } }
        let workers = plan.workers
        parameterBlocks = layers.map { l in
            let parts = plan.parameterParts[l]
            /// The union of rank r's parts' slices (contiguous: no plan wraps across ranks).
            func block(_ r: Int, _ pick: (ParameterSlices) -> Range<Int>) -> Range<Int> {
                let mine = (0..<parts).filter { plan.owner(l, part: $0) / workers == r }
                    .map { pick(model.layers[l].parameterSlices(part: $0, of: parts)) }.filter { !$0.isEmpty }
                guard let first = mine.first, let last = mine.last else { return 0..<0 }
                return first.lowerBound..<last.upperBound
            }
            return (
                l, (0..<communicator.size).map { block($0, \.first) },
                (0..<communicator.size).map { block($0, \.second) },
                PackedBlocks(layer: l, plan: plan, model: model, buffers: buffers, communicator: communicator)
            )
        }
    }

    deinit {
        counts.deallocate()
        displacements.deallocate()
    }

    /// Whether layer `l`'s updated weights travel packed (see the top of this file): across ranks, when its
    /// forward product reads a packed copy and no other product does.
    static func travelsPacked(_ l: Int, plan: StepPlan, model: Sequential, buffers: ActivationBuffers) -> Bool {
        guard plan.ranks > 1, plan.packsWeights, let layer = model.layers[l] as? TiledLayer else { return false }
        return buffers.packedWeights(l, .forward) != nil && buffers.packedWeights(l, .inputGradient) == nil
            && !layer.packedWeightRanges(part: 0, of: 1).isEmpty
    }

    /// Rebuilds, in every layer whose weights travel packed, the rows other ranks updated from the packed copy
    /// they arrived in. Every rank, after each job: outside a job the weights are whole again.
    func unpackArrived() {
        for (l, _, _, packed) in parameterBlocks where packed != nil {
            guard let layer = model.layers[l] as? TiledLayer, let copy = buffers.packedWeights(l, .forward) else {
                continue
            }
            let parts = plan.parameterParts[l]
            for part in 0..<parts where plan.owner(l, part: part) / plan.workers != communicator.rank {
                layer.unpackWeights(part: part, of: parts, from: copy)
            }
        }
    }

    /// Every rank's rows `rankRows(n, r)` of a buffer of `width` floats per row; with `early`, only started
    /// (`finishStarted` waits for it).
    private func gatherRows(_ base: UnsafeMutablePointer<Float>, width: Int, batch n: Int, early: Bool = false) {
        for r in 0..<communicator.size {
            let rows = plan.rankRows(n, rank: r)
            counts[r] = Int32(rows.count * width)
            displacements[r] = Int32(rows.lowerBound * width)
        }
        if early {
            communicator.startAllgather(base, counts: counts, displacements: displacements)
            bytesStarted += Int(counts[communicator.rank]) * 4
        } else {
            communicator.allgather(base, counts: counts, displacements: displacements)
        }
        bytesSent += Int(counts[communicator.rank]) * 4
    }

    /// A layer's input (its rows: the previous layer's output) or output gradient, and its width.
    private func rows(of activation: StepPlan.Activation) -> (UnsafeMutablePointer<Float>, width: Int) {
        switch activation {
        case .input(let l): (buffers.output(l - 1, 0..<0).base, model.widths[l])
        case .outputGradient(let l): (buffers.gradient(l, 0..<0).base, model.widths[l + 1])
        }
    }

    /// Early in the step: this rank's rows of `activation` start travelling (see `StepPlan.Exchange.start`).
    func start(_ activation: StepPlan.Activation, batch n: Int) {
        let start = monotonicSeconds()
        defer { seconds += monotonicSeconds() - start }
        let (base, width) = rows(of: activation)
        gatherRows(base, width: width, batch: n, early: true)
    }

    /// Before the weight gradients: each layer's input and output gradient (finishing those started early),
    /// the rows' losses and correctness.
    func activations(batch n: Int) {
        let start = monotonicSeconds()
        defer { seconds += monotonicSeconds() - start }
        steps += 1
        if !startsEarly.isEmpty { communicator.finishStarted() }
        /// Sends `activation` unless it was started early.
        func send(_ activation: StepPlan.Activation) {
            guard !startsEarly.contains(activation) else { return }
            let (base, width) = rows(of: activation)
            gatherRows(base, width: width, batch: n)
        }
        for l in layers {
            if l > 0 { send(.input(layer: l)) }
            send(.outputGradient(layer: l))
        }
        gatherRows(buffers.rowLoss, width: 1, batch: n)
        gatherRows(buffers.rowMetric, width: 1, batch: n)
    }

    /// After the update: the parameters each rank updated, tensor block by tensor block; a kernel that travels
    /// packed goes from its packed copy to the others' (`values` is the model's parameters then).
    /// (`counted`: false for the optimizer state gathered before a checkpoint, which is not a step's traffic and
    /// always travels as it lies.)
    func parameters(_ values: UnsafeMutablePointer<Float>, counted: Bool = true) {
        let (start, sent) = (monotonicSeconds(), bytesSent)
        defer {
            if counted { seconds += monotonicSeconds() - start } else { bytesSent = sent }
        }
        func gather(_ blocks: [Range<Int>], of l: Int) {
            for r in 0..<communicator.size {
                counts[r] = Int32(blocks[r].count)
                displacements[r] = Int32(blocks[r].lowerBound)
            }
            communicator.allgather(values + model.offsets[l], counts: counts, displacements: displacements)
            bytesSent += Int(counts[communicator.rank]) * 4
        }
        for (l, kernel, bias, packed) in parameterBlocks {
            if counted, let packed, let copy = buffers.packedWeights(l, .forward) {
                communicator.exchangeBlocks(copy, handles: packed.handles)
                bytesSent += packed.floats * 4
            } else {
                gather(kernel, of: l)
            }
            gather(bias, of: l)
        }
    }

    /// Sums per chunk over ranks: `send` holds this rank's chunks (zero elsewhere).
    func sumChunks(_ send: UnsafePointer<Double>, into receive: UnsafeMutablePointer<Double>) {
        let start = monotonicSeconds()
        communicator.sum(send, into: receive, count: plan.chunks.count)
        bytesSent += plan.chunks.count * 8
        seconds += monotonicSeconds() - start
    }
}

/// Each rank's rows of one layer's weights in its forward product's packed copy, as MPI datatypes (made once
/// per run): what `Exchanger.parameters` sends instead of the rows as they lie.
final class PackedBlocks {
    let communicator: Communicator
    /// Rank r's datatype.
    let handles: UnsafeMutablePointer<Int32>
    /// Floats this rank sends.
    let floats: Int

    /// nil when the layer's weights do not travel packed, or MPI refused a datatype (they travel as they lie).
    init?(layer l: Int, plan: StepPlan, model: Sequential, buffers: ActivationBuffers, communicator: Communicator) {
        guard Exchanger.travelsPacked(l, plan: plan, model: model, buffers: buffers),
            let layer = model.layers[l] as? TiledLayer
        else { return nil }
        let parts = plan.parameterParts[l]
        /// Rank r's ranges, in order (adjacent ones need no merging: MPI joins contiguous blocks itself).
        func ranges(_ r: Int) -> [Range<Int>] {
            (0..<parts).filter { plan.owner(l, part: $0) / plan.workers == r }
                .flatMap { layer.packedWeightRanges(part: $0, of: parts) }.sorted { $0.lowerBound < $1.lowerBound }
        }
        let perRank = (0..<communicator.size).map(ranges)
        var made: [Int32] = []
        for r in perRank {
            guard let handle = communicator.floatBlocks(r) else {
                made.forEach(communicator.freeBlocks)
                return nil
            }
            made.append(handle)
        }
        self.communicator = communicator
        handles = .allocate(capacity: made.count)
        handles.initialize(from: made, count: made.count)
        floats = perRank[communicator.rank].reduce(0) { $0 + $1.count }
    }

    deinit {
        for r in 0..<communicator.size { communicator.freeBlocks(handles[r]) }
        handles.deallocate()
    }
}
