// Exchange: what the ranks of a job send each other during a step (StepPlan.Exchange), run by worker 0 of each
// rank between two barriers. Every buffer already sits where the step reads it: each rank's block goes out from,
// and the others' blocks land in, the same activation, loss or parameter buffer (MPI_Allgatherv in place), so
// nothing is copied and a step allocates nothing. Chunk sums (penalty, gradient norms) are added over ranks with
// an allreduce in which each chunk is non-zero on its owner's rank only: adding zeros is exact, so the sums are
// the same numbers as on one process.
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
    /// Per layer with parameters: each rank's contiguous range of the layer's kernel and of its bias.
    private let parameterBlocks: [(layer: Int, kernel: [Range<Int>], bias: [Range<Int>])]
    /// Seconds worker 0 spent in exchanges, and the bytes this rank sent (its blocks, once per collective), since
    /// the trainer was built; read by the main thread between jobs.
    private(set) var seconds = 0.0
    private(set) var bytesSent = 0
    private(set) var steps = 0
    /// Speaks for this rank if a stop signal finds it waiting on ranks that no longer answer.
    let watch: StallWatch

    init(communicator: Communicator, plan: StepPlan, model: Sequential, buffers: ActivationBuffers) {
        (self.communicator, self.plan, self.model, self.buffers) = (communicator, plan, model, buffers)
        watch = StallWatch(rank: communicator.rank, host: communicator.host)
        counts = .allocate(capacity: communicator.size)
        displacements = .allocate(capacity: communicator.size)
        layers = model.layers.indices.filter { plan.parameterParts[$0] > 0 }
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
                (0..<communicator.size).map { block($0, \.second) }
            )
        }
    }

    deinit {
        counts.deallocate()
        displacements.deallocate()
    }

    /// Every rank's rows `rankRows(n, r)` of a buffer of `width` floats per row.
    private func gatherRows(_ base: UnsafeMutablePointer<Float>, width: Int, batch n: Int) {
        for r in 0..<communicator.size {
            let rows = plan.rankRows(n, rank: r)
            counts[r] = Int32(rows.count * width)
            displacements[r] = Int32(rows.lowerBound * width)
        }
        communicator.allgather(base, counts: counts, displacements: displacements)
        bytesSent += Int(counts[communicator.rank]) * 4
    }

    /// Before the weight gradients: each layer's input and output gradient, the rows' losses and correctness.
    func activations(batch n: Int) {
        let start = monotonicSeconds()
        defer { seconds += monotonicSeconds() - start }
        steps += 1
        for l in layers {
            if l > 0 { gatherRows(buffers.output(l - 1, 0..<0).base, width: model.widths[l], batch: n) }
            gatherRows(buffers.gradient(l, 0..<0).base, width: model.widths[l + 1], batch: n)
        }
        gatherRows(buffers.rowLoss, width: 1, batch: n)
        gatherRows(buffers.rowMetric, width: 1, batch: n)
    }

    /// After the update: the parameters each rank updated, tensor block by tensor block.
    /// (`counted`: false for the optimizer state gathered before a checkpoint, which is not a step's traffic.)
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
        for (l, kernel, bias) in parameterBlocks {
            gather(kernel, of: l)
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
