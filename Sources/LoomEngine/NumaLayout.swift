// NumaLayout: where a step's memory should live on a machine with several NUMA nodes, and what still crosses.
//
// Each parameter has one owner, the worker that computes its gradient and applies its update (StepPlan's
// parameter blocks); its value, gradient and optimizer slots belong on the owner's node. The pages of the flat
// buffers are moved there once, before training (`move`, through libnuma; nothing to do on one node).
// Activations are written by one worker and read by others after a barrier: `crossingBytes` counts, for one
// step of the plan, the bytes a worker reads that a worker on another node wrote (or that live there: weights
// read by a forward tile whose columns cut across the owners' rows).
import CSupport
import Foundation
import LoomNN

/// The node of every parameter block, and the traffic between nodes, for one plan on one placement.
public struct NumaLayout: Sendable, Equatable {
    /// Ranges of the model's flat parameter buffer (in floats) and the node their owner runs on, in order.
    public let ranges: [(range: Range<Int>, node: Int)]
    /// Bytes read per step by workers on one node that were written by (or belong to) another node.
    public let crossingBytes: Int

    public static func == (a: NumaLayout, b: NumaLayout) -> Bool {
        a.crossingBytes == b.crossingBytes
            && a.ranges.elementsEqual(b.ranges) { $0.range == $1.range && $0.node == $1.node }
    }

    /// The layout of `model`'s parameters and slots for `plan` on workers placed at `placements`.
    public init(model: Sequential, plan: StepPlan, placements: [WorkerPlacement]) {
        let node = placements.map(\.node)
        var ranges: [(Range<Int>, Int)] = []
        // Weight rows and bias entries of each dense layer, by parameter block owner.
        for (l, layer) in model.layers.enumerated() where plan.parameterParts[l] > 0 {
            let (inputs, units, parts) = (layer.inputWidth, layer.outputWidth, plan.parameterParts[l])
            for part in 0..<parts {
                let owner = plan.owner(l, part: part) % plan.workers
                let rows = shard(inputs, part: part, of: parts)
                ranges.append(
                    (
                        model.offsets[l] + rows.lowerBound * units..<model.offsets[l] + rows.upperBound * units,
                        node[owner]
                    ))
            }
            for part in 0..<parts {
                let owner = plan.owner(l, part: part) % plan.workers
                let bias = shard(units, part: part, of: parts)
                let start = model.offsets[l] + inputs * units
                ranges.append((start + bias.lowerBound..<start + bias.upperBound, node[owner]))
            }
        }
        self.ranges = ranges.filter { !$0.0.isEmpty }
        crossingBytes = NumaLayout.crossing(model: model, plan: plan, nodes: node)
    }

    /// A rectangle of a batch buffer (rows × columns) and the node that wrote it.
    struct Block {
        var rows: Range<Int>
        var columns: Range<Int>
        var node: Int
    }

    /// Walks one full-batch step of the plan, remembering who wrote each block of every activation and gradient
    /// buffer, and adds up what each reader takes from another node.
    static func crossing(model: Sequential, plan: StepPlan, nodes: [Int]) -> Int {
        let n = plan.batchSize
        let widths = model.widths
        let workers = plan.workers
        var writers = [[Block]](repeating: [], count: widths.count)  // outputs: index l + 1 (0: the input)
        var gradientWriters = [[Block]](repeating: [], count: widths.count)
        var bytes = 0
        func rowShard(_ w: Int) -> Range<Int> { shard(n, part: w, of: workers) }
        func overlap(_ a: Range<Int>, _ b: Range<Int>) -> Int {
            max(0, min(a.upperBound, b.upperBound) - max(a.lowerBound, b.lowerBound))
        }
        func read(_ blocks: [Block], rows: Range<Int>, columns: Range<Int>, on node: Int) -> Int {
            blocks.reduce(0) { $0 + ($1.node == node ? 0 : overlap(rows, $1.rows) * overlap(columns, $1.columns) * 4) }
        }
        func rowBlocks(width: Int) -> [Block] {
            (0..<workers).map { Block(rows: rowShard($0), columns: 0..<width, node: nodes[$0]) }
        }
        /// The node that owns row `i` of layer l's weights (its parameter block's owner).
        func ownerNode(_ l: Int, row i: Int) -> Int {
            let parts = plan.parameterParts[l]
            let part = (0..<parts).first { shard(model.layers[l].inputWidth, part: $0, of: parts).contains(i) } ?? 0
            return nodes[plan.owner(l, part: part) % workers]
        }
        for stage in plan.stages {
            switch stage {
            case .gather:
                writers[0] = rowBlocks(width: widths[0])
            case .rowForward(let l):
                for w in 0..<workers {
                    bytes += read(writers[l], rows: rowShard(w), columns: 0..<widths[l], on: nodes[w])
                }
                writers[l + 1] = rowBlocks(width: widths[l + 1])
            case .forward(let l, let split):
                var written: [Block] = []
                for w in 0..<workers {
                    guard let tile = split.tile(w, rows: n, columns: widths[l + 1], align: StepPlan.align) else {
                        continue
                    }
                    bytes += read(writers[l], rows: tile.rows, columns: 0..<widths[l], on: nodes[w])
                    // The weights' columns of this tile, all of their rows, each row on its owner's node.
                    for i in 0..<widths[l] where ownerNode(l, row: i) != nodes[w] { bytes += tile.columns.count * 4 }
                    written.append(Block(rows: tile.rows, columns: tile.columns, node: nodes[w]))
                }
                writers[l + 1] = written
            case .loss:
                let last = widths.count - 1
                for w in 0..<workers {
                    bytes += read(writers[last], rows: rowShard(w), columns: 0..<widths[last], on: nodes[w])
                }
                gradientWriters[last] = rowBlocks(width: widths[last])
            case .activationGradient(let l), .rowBackward(let l):
                for w in 0..<workers {
                    bytes += read(gradientWriters[l + 1], rows: rowShard(w), columns: 0..<widths[l + 1], on: nodes[w])
                }
                gradientWriters[l + 1] = rowBlocks(width: widths[l + 1])
                if case .rowBackward = stage { gradientWriters[l] = rowBlocks(width: widths[l]) }
            case .inputGradient(let l, let split):
                var written: [Block] = []
                for w in 0..<workers {
                    guard let tile = split.tile(w, rows: n, columns: widths[l], align: StepPlan.align) else { continue }
                    bytes += read(gradientWriters[l + 1], rows: tile.rows, columns: 0..<widths[l + 1], on: nodes[w])
                    for i in tile.columns where ownerNode(l, row: i) != nodes[w] { bytes += widths[l + 1] * 4 }
                    written.append(Block(rows: tile.rows, columns: tile.columns, node: nodes[w]))
                }
                gradientWriters[l] = written
            case .parameters:
                // Each block of W's rows reads those input columns of every row, and all of dZ.
                for (l, layer) in model.layers.enumerated() where plan.parameterParts[l] > 0 {
                    for part in 0..<plan.parameterParts[l] {
                        let w = plan.owner(l, part: part) % workers
                        let rows = shard(layer.inputWidth, part: part, of: plan.parameterParts[l])
                        bytes += read(writers[l], rows: 0..<n, columns: rows, on: nodes[w])
                        bytes += read(gradientWriters[l + 1], rows: 0..<n, columns: 0..<widths[l + 1], on: nodes[w])
                    }
                }
            case .packGradients:
                // Each worker packs its rows of ∂L/∂z; the blocks of the weight gradient read the packed copy,
                // which lies as the row shards' writers left it.
                for (l, layer) in model.layers.enumerated() where plan.parameterParts[l] > 0 && layer is TiledLayer {
                    for w in 0..<workers {
                        bytes += read(
                            gradientWriters[l + 1], rows: rowShard(w), columns: 0..<widths[l + 1], on: nodes[w])
                    }
                    gradientWriters[l + 1] = rowBlocks(width: widths[l + 1])
                }
            case .penalty, .gradientNorms, .clippedUpdate, .exchange, .packWeights:
                // Chunks are summed by the owners of their first values: only a chunk that straddles two
                // owners on different nodes reads from another node (at most one chunk per owner boundary).
                break
            case .barrier, .groupBarrier:
                break
            }
        }
        return bytes
    }

    /// Moves the pages of `buffers` (each laid out like the parameters) to their owners' nodes. Pages shared by
    /// two owners stay where they are. Does nothing unless libnuma reports several nodes. Returns the pages moved.
    @discardableResult
    public func move(_ buffers: [UnsafeMutablePointer<Float>]) -> Int {
        guard loom_numa_available() == 1, loom_numa_max_node() > 0 else { return 0 }
        let page = Int(sysconf(Int32(_SC_PAGESIZE)))
        var moved = 0
        for base in buffers {
            for (range, node) in ranges {
                let start = (Int(bitPattern: base + range.lowerBound) + page - 1) / page * page
                let end = Int(bitPattern: base + range.upperBound) / page * page
                if end > start,
                    loom_numa_move(UnsafeMutableRawPointer(bitPattern: start), UInt64(end - start), Int32(node)) == 0
                {
                    moved += (end - start) / page
                }
            }
        }
        return moved
    }
}
