import Foundation
import LoomNN
import Testing

@testable import LoomEngine

@Suite("Parameters on their owners' nodes")
struct NumaLayoutTests {
    func model() -> Sequential {
        Sequential(
            inputWidth: 64, layers: [Dense(units: 96, activation: .relu), Dense(units: 10, activation: .softmax)],
            loss: .sparseCategoricalCrossentropy)
    }

    /// A described machine of `nodes` nodes with `cpus` CPUs each.
    func machine(nodes: Int, cpus: Int) throws -> Topology {
        try Topology.fromSysfs(
            root: sysfs(nodes: (0..<nodes).map { n in ("\(n * cpus)-\(n * cpus + cpus - 1)", 1 << 20) }))
    }

    @Test("every parameter has one range, on the node of the worker that updates it", arguments: [2, 4])
    func ownersNodes(nodes: Int) throws {
        let m = model()
        let topology = try machine(nodes: nodes, cpus: 4)
        for policy in StepPlan.Policy.allCases {
            for workers in [nodes, 2 * nodes, 4 * nodes] {
                let plan = StepPlan(model: m, batchSize: 64, workers: workers, policy: policy)
                let placements = topology.placement(workers: workers)
                let layout = NumaLayout(model: m, plan: plan, placements: placements)
                var owner = [Int](repeating: -1, count: m.parameterCount)
                for (range, node) in layout.ranges {
                    for i in range {
                        #expect(owner[i] == -1, "parameter \(i) placed twice")
                        owner[i] = node
                    }
                }
                #expect(!owner.contains(-1), "\(policy), \(workers) workers: a parameter has no node")
                // Layer 0's kernel row r belongs to the worker that updates it.
                let parts = plan.parameterParts[0]
                for r in stride(from: 0, to: 64, by: 7) {
                    let part = (0..<parts).first { shard(64, part: $0, of: parts).contains(r) }!
                    let worker = plan.owner(0, part: part) % workers
                    #expect(owner[r * 96] == placements[worker].node)
                }
                #expect(Set(owner).count == nodes, "\(policy), \(workers) workers: owners on every node")
            }
        }
    }

    @Test("nothing crosses on one node; on two, the bytes a step moves between them, counted by hand")
    func crossing() throws {
        let m = model()
        let one = try machine(nodes: 1, cpus: 16)
        let two = try machine(nodes: 2, cpus: 8)
        for workers in [2, 8, 16] {
            let rows = StepPlan(model: m, batchSize: 64, workers: workers, policy: .rows)
            #expect(NumaLayout(model: m, plan: rows, placements: one.placement(workers: workers)).crossingBytes == 0)
            #expect(NumaLayout(model: m, plan: rows, placements: two.placement(workers: workers)).crossingBytes > 0)
        }
        // 2 workers, one per node, row shards. Weights: each forward reads the other node's rows of both kernels
        // (32 × 96 and 48 × 10), the second layer's input gradient the other 48 rows of its kernel again.
        // Activations, in the weight gradients: the other 32 rows of the input's own 32 columns and of dZ (96
        // wide) for layer 0; of the hidden layer's own 48 columns and of dZ (10 wide) for layer 1.
        let plan = StepPlan(model: m, batchSize: 64, workers: 2, policy: .rows)
        let layout = NumaLayout(model: m, plan: plan, placements: two.placement(workers: 2))
        let weights = 2 * (32 * 96 + 48 * 10 + 48 * 10) * 4
        let activations = 2 * (32 * 32 + 32 * 96 + 32 * 48 + 32 * 10) * 4
        #expect(layout.crossingBytes == weights + activations, "\(layout.crossingBytes)")
    }
}
