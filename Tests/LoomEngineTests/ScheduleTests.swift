import Foundation
import LoomConfig
import LoomData
import LoomKernels
import LoomNN
import LoomTestSupport
import Testing

@testable import LoomEngine

/// `configs/mnist-wide.yaml`'s model: 784 → 2048 → 2048 → 10.
func wideModel() -> Sequential {
    Sequential(
        inputWidth: 784,
        layers: [
            Dense(units: 2048, activation: .relu), Dense(units: 2048, activation: .relu),
            Dense(units: 10, activation: .softmax),
        ], loss: .sparseCategoricalCrossentropy)
}

/// A model with every layer kind, wide enough for column blocks: 10 → 96 relu → dropout → 70 tanh → relu →
/// 40 sigmoid → 4 softmax.
func scheduleModel() -> Sequential {
    Sequential(
        inputWidth: 10,
        layers: [
            Dense(units: 96, activation: .relu), Dropout(rate: 0.2), Dense(units: 70, activation: .tanh),
            ActivationLayer(.relu), Dense(units: 40, activation: .sigmoid), Dense(units: 4, activation: .softmax),
        ], loss: .sparseCategoricalCrossentropy)
}

@Suite("The step plan", .serialized)
struct ScheduleTests {
    func digest(workers: Int, policy: StepPlan.Policy, optimizer: OptimizerSpec) -> String {
        let model = scheduleModel()
        model.initialize(seed: 3)
        let t = Trainer(
            checked: model, optimizer: optimizer, placements: Topology.detect().placement(workers: workers),
            batchSize: 128, seed: 3, pin: false, schedule: policy)
        _ = t.fit(fizzBuzz().train, epochs: 2)  // 8 steps an epoch, the last of 27 rows
        return model.weightsDigest()
    }

    @Test(
        "weights_digest is the same for 1, 2, 3, 4, 5, 8, 16 and 64 workers and every schedule, with every layer kind and dropout",
        arguments: [
            OptimizerSpec.sgd(learningRate: 0.05, momentum: 0.9, nesterov: true),
            .rmsprop(learningRate: 0.01, momentum: 0.5, centered: true), .adam(learningRate: 0.01),
        ])
    func digests(optimizer: OptimizerSpec) {
        let reference = digest(workers: 1, policy: .rows, optimizer: optimizer)
        let counts = optimizer.name == "rmsprop" ? [2, 3, 4, 5, 8, 16, 64] : [2, 3, 5, 16]
        for workers in counts {
            for policy in StepPlan.Policy.allCases {
                #expect(
                    digest(workers: workers, policy: policy, optimizer: optimizer) == reference,
                    "\(workers) workers, \(policy)")
            }
        }
    }

    @Test("weights written between two fits (a load, a re-initialization) reach the packed copies the forward reads")
    func weightsWrittenBetweenFits() {
        func run(workers: Int, policy: StepPlan.Policy) -> String {
            let model = scheduleModel()
            model.initialize(seed: 3)
            let t = Trainer(
                checked: model, optimizer: .rmsprop(learningRate: 0.01),
                placements:
                    Topology.detect().placement(workers: workers), batchSize: 128, seed: 3, pin: false, schedule: policy
            )
            _ = t.fit(fizzBuzz().train, epochs: 1)
            model.initialize(seed: 7)  // written outside any step: the next job must pack these weights
            _ = t.fit(fizzBuzz().train, epochs: 1)
            return model.weightsDigest()
        }
        let reference = run(workers: 1, policy: .rows)
        #expect(StepPlan(model: scheduleModel(), batchSize: 128, workers: 2, policy: .auto).packsWeights)
        #expect(StepPlan(model: scheduleModel(), batchSize: 128, workers: 3, policy: .widest).packsWeights)
        for (workers, policy) in [(1, StepPlan.Policy.auto), (2, .auto), (4, .auto), (3, .widest)] {
            #expect(run(workers: workers, policy: policy) == reference, "\(workers) workers, \(policy)")
        }
    }

    @Test("the widest schedule really cuts products into column blocks and 2-D grids; barriers only where needed")
    func plans() {
        let model = scheduleModel()
        let widest = StepPlan(model: model, batchSize: 128, workers: 8, policy: .widest)
        let columnCuts = widest.stages.filter {
            if case .forward(_, let s) = $0 { return s.columnGroups > 1 }
            if case .inputGradient(_, let s) = $0 { return s.columnGroups > 1 }
            return false
        }
        #expect(columnCuts.count >= 3, "\(widest)")
        let rows = StepPlan(model: model, batchSize: 128, workers: 8, policy: .rows)
        #expect(rows.barriers == 2, "\(rows)")  // before the weight gradients, and at the end of the step
        #expect(widest.barriers > rows.barriers)
        // No two barriers in a row, and every stage is preceded by one unless both sides use the row shards.
        for (a, b) in zip(widest.stages, widest.stages.dropFirst()) { #expect(!(a == .barrier && b == .barrier)) }
    }

    @Test("column blocks start on register panels and cover the width once")
    func alignedShards() {
        for (n, parts) in [(512, 16), (784, 8), (100, 3), (40, 4), (96, 3)] {
            var covered = 0
            for p in 0..<parts {
                let r = alignedShard(n, part: p, of: parts, align: 32)
                #expect(r.lowerBound == covered)
                if n >= parts * 32 && p > 0 { #expect(r.lowerBound % 32 == 0) }
                covered = r.upperBound
            }
            #expect(covered == n)
        }
    }

    @Test("the automatic plan keeps the row shards on 2 workers for small layers, and cuts wide ones on many")
    func autoChoices() {
        let small = Sequential(
            inputWidth: 10, layers: [Dense(units: 24, activation: .relu), Dense(units: 4, activation: .softmax)],
            loss: .sparseCategoricalCrossentropy)
        #expect(StepPlan(model: small, batchSize: 128, workers: 2).barriers == 2)
        let wide = Sequential(
            inputWidth: 784, layers: [Dense(units: 2048, activation: .relu), Dense(units: 10, activation: .softmax)],
            loss: .sparseCategoricalCrossentropy)
        let plan = StepPlan(model: wide, batchSize: 128, workers: 64)
        guard case .forward(_, let split) = plan.stages.first(where: { if case .forward = $0 { true } else { false } })
        else {
            Issue.record("no forward stage")
            return
        }
        #expect(split.columnGroups > 1, "\(plan)")
    }

    @Test("small layers' weight gradients ride on the workers the big ones leave lightest, with the same weights")
    func riding() {
        func model() -> Sequential {
            Sequential(
                inputWidth: 10,
                layers: [
                    // 512 wide, so that the middle layer's blocks outweigh the others' under both kernel widths
                    // (with 256, the AVX2 tile model gave 8 workers disjoint layers).
                    Dense(units: 64, activation: .relu), Dense(units: 512, activation: .relu),
                    Dense(units: 4, activation: .softmax),
                ], loss: .sparseCategoricalCrossentropy)
        }
        func digest(_ workers: Int) -> String {
            let m = model()
            m.initialize(seed: 5)
            let t = Trainer(
                checked: m, optimizer: .rmsprop(learningRate: 0.01),
                placements: Topology.detect().placement(
                    workers: workers), batchSize: 128, seed: 5, pin: false)
            _ = t.fit(fizzBuzz().train, epochs: 2)
            return m.weightsDigest()
        }
        let reference = digest(1)
        for workers in [6, 8] {
            let plan = StepPlan(model: model(), batchSize: 128, workers: workers)
            let owners = plan.parameterOwners.filter { !$0.isEmpty }
            // More blocks than workers, yet not every layer on every worker: some worker holds two layers' blocks.
            #expect(owners.reduce(0) { $0 + $1.count } > workers, "\(owners)")
            #expect(owners.contains { $0.count < workers }, "\(owners)")
            for (l, layerOwners) in plan.parameterOwners.enumerated() {
                #expect(Set(layerOwners).count == layerOwners.count, "a worker holds two blocks of layer \(l)")
                for (part, w) in layerOwners.enumerated() { #expect(plan.parameterPart(l, worker: w) == part) }
            }
            #expect(digest(workers) == reference, "\(workers) workers")
        }
    }

    @Test("barriers within groups where no two groups touch a batch row; full ones around every other stage")
    func groupBarriers() {
        let book = Sequential(
            inputWidth: 784, layers: [Dense(units: 512, activation: .relu), Dense(units: 10, activation: .softmax)],
            loss: .sparseCategoricalCrossentropy)
        // 64 workers: the R×C forward tiles (R row groups of C = 64 / R workers; 16×4 or 8×8 as the tile model
        // prices this CPU's kernel) are groups who gather those rows and then compute the row shards the loss and
        // the backward pass use: the two barriers before the parameters stage's are among C workers (log₂ C
        // rounds, not 6); the parameters stage keeps a full barrier on both sides.
        let plan = StepPlan(model: book, batchSize: 128, workers: 64)
        let forward = plan.stages.compactMap { stage -> LoomEngine.Split? in
            if case .forward(0, let split) = stage { split } else { nil }
        }
        let group = 64 / (forward.first?.rowGroups ?? 1)
        #expect(group > 1 && group < 64, "\(plan)")
        #expect(plan.stages.filter { $0 == .groupBarrier(workers: group) }.count == 2, "\(plan)")
        #expect(plan.stages.filter { $0 == .barrier }.count == 2, "\(plan)")
        #expect(plan.barrierRounds == 2 * group.trailingZeroBitCount + 6 + 6)
        #expect(plan.groupSize == group)
        let parameters = plan.stages.firstIndex(of: .parameters)!
        #expect(plan.stages[parameters - 1] == .barrier && plan.stages[parameters + 1] == .barrier)
        // A product in column blocks only (one row group) needs every worker's rows: no groups then.
        let wide = Sequential(
            inputWidth: 784, layers: [Dense(units: 2048, activation: .relu), Dense(units: 2048, activation: .relu)],
            loss: .meanSquaredError)
        let columns = StepPlan(model: wide, batchSize: 512, workers: 16, policy: .widest)
        #expect(columns.groupSize == nil, "\(columns)")
        // Nor on several ranks, nor with the row-only schedule (whose only barriers surround the parameters).
        #expect(StepPlan(model: book, batchSize: 128, workers: 32, ranks: 2).groupSize == nil)
        #expect(StepPlan(model: book, batchSize: 128, workers: 64, policy: .rows).groupSize == nil)
    }

    @Test(
        "a tile of 1 to 4 rows is priced as the 4-row strip the kernel computes, so a narrow product keeps row shards")
    func paddedStrips() {
        // Streaming B is paid per computed strip: 2 rows cost what 4 do, not twice as much per row.
        #expect(StepPlan.tileCost(m: 2, n: 10, k: 512) <= StepPlan.tileCost(m: 4, n: 10, k: 512))
        #expect(StepPlan.efficiency(m: 12, n: 512, k: 128) > StepPlan.efficiency(m: 13, n: 512, k: 128) * 0.9)
        // The book's model on 64 workers: the 10-wide output layer's forward stays in row shards (2 rows each),
        // so the loss and its gradient follow without a barrier (measured with `loom bench project`: 45.6–46.5 µs
        // a step against 46.8–48.8 µs with 32 blocks of 4 rows and the barrier).
        let book = Sequential(
            inputWidth: 784, layers: [Dense(units: 512, activation: .relu), Dense(units: 10, activation: .softmax)],
            loss: .sparseCategoricalCrossentropy)
        let plan = StepPlan(model: book, batchSize: 128, workers: 64)
        #expect(plan.stages.contains(.forward(layer: 1, split: Split(rowGroups: 64, columnGroups: 1))), "\(plan)")
        #expect(plan.barriers == 4, "\(plan)")
    }

    @Test("short row shards read W and ∂L/∂z in place; long shards, tiles and several ranks pack them")
    func packing() {
        let book = Sequential(
            inputWidth: 784, layers: [Dense(units: 512, activation: .relu), Dense(units: 10, activation: .softmax)],
            loss: .sparseCategoricalCrossentropy)
        for workers in [1, 2, 4, 8, 16, 32, 64] {
            let plan = StepPlan(model: book, batchSize: 128, workers: workers)
            let rowShards = plan.stages.allSatisfy { stage in
                switch stage {
                case .forward(_, let split), .inputGradient(_, let split): split.columnGroups == 1
                default: true
                }
            }
            let expected = !rowShards || 128 / workers >= StepPlan.packedRows
            #expect(plan.packsGradients == expected && plan.packsWeights == expected, "\(plan)")
            #expect(plan.stages.contains(.packGradients) == expected)
        }
        #expect(StepPlan(model: book, batchSize: 128, workers: 1).packsWeights)
        #expect(!StepPlan(model: book, batchSize: 128, workers: 1, policy: .rows).packsWeights)
        #expect(StepPlan(model: book, batchSize: 128, workers: 4, ranks: 2).packsWeights)
    }

    @Test("a tile's operands are priced one K block deep, as the kernel keeps them in cache")
    func kBlockDepth() {
        // The wide model's 2048-deep products on 64 workers: an 8×8 tile's B (256 columns) is 2 MB over all k but
        // 512 KB per K block, and was priced as streaming from memory, so the plan took 4×16 tiles (measured
        // with `loom bench project configs/mnist-wide.yaml`, Zen 4: 2.89 ms a step with 8×8 against 2.97).
        #expect(StepPlan.efficiency(m: 64, n: 256, k: 2048) == StepPlan.efficiency(m: 64, n: 256, k: 512))
        #expect(StepPlan.efficiency(m: 64, n: 1024, k: 512) < StepPlan.efficiency(m: 64, n: 256, k: 512))
    }

    @Test("a whole B that stays in the shared L3 costs a strip the cached price, not memory's")
    func l3Tier() {
        // The wide model's layer-1 weight gradient, a 46-row block (64 workers): ∂L/∂z is 512 × 2048 (4 MB), more
        // than any core cache, less than a quarter of a 32 MB L3. Measured at 0.96 of the one-worker rate.
        let inL3 = StepPlan.efficiency(m: 46, n: 2048, k: 512, l2Bytes: 1 << 20, l3Bytes: 32 << 20)
        let fromMemory = StepPlan.efficiency(m: 46, n: 2048, k: 512, l2Bytes: 1 << 20, l3Bytes: 0)
        #expect(inL3 > 0.85 && fromMemory < 0.65, "\(inL3) \(fromMemory)")
        // The same layer's forward on 64 workers reads all of W (16 MB): from memory either way.
        #expect(
            StepPlan.efficiency(m: 8, n: 2048, k: 2048, l2Bytes: 1 << 20, l3Bytes: 32 << 20)
                == StepPlan.efficiency(m: 8, n: 2048, k: 2048, l2Bytes: 1 << 20, l3Bytes: 0))
    }

    @Test("the weight-gradient placement prices the packed copies each layer's owners refresh")
    func packedCopies() {
        // The wide model on 64 workers: layer 1's owners refresh two packed copies of their rows (forward, input
        // gradient), layer 0's one. Unpriced, layer 1 got the longer blocks (44.5 rows against 43.6) and its
        // owners ran 7% longer (`loom bench project --stages`, Zen 4); priced, its blocks are the shorter.
        let wide = wideModel()
        func rowsPerBlock(packsWeights: Bool) -> [Double] {
            let owners = StepPlan.parameterBlocks(
                model: wide, batchSize: 512, workers: 64, policy: .auto, packsWeights: packsWeights)
            return [784.0 / Double(owners[0].count), 2048.0 / Double(owners[1].count)]
        }
        let priced = rowsPerBlock(packsWeights: true)
        let unpriced = rowsPerBlock(packsWeights: false)
        #expect(priced[1] < priced[0] && unpriced[1] > unpriced[0], "\(priced) \(unpriced)")
        #expect(StepPlan(model: wide, batchSize: 512, workers: 64).packsWeights)
    }

    @Test("a B block that fits the core's L2 makes short row shards nearly as efficient as long ones")
    func l2Tier() throws {
        // The book's forward, 16 rows a worker: its 392 × 512 B block (800 KB) fits Zen 4's 1 MB L2, not Zen 3's
        // 512 KB; the model reads the size from sysfs.
        let zen4 = StepPlan.efficiency(m: 16, n: 512, k: 784, l2Bytes: 1 << 20)
        let zen3 = StepPlan.efficiency(m: 16, n: 512, k: 784, l2Bytes: 512 << 10)
        #expect(zen4 > 0.9 * StepPlan.efficiency(m: 128, n: 512, k: 784, l2Bytes: 1 << 20))
        #expect(zen3 < 0.8 * zen4)
        let root = temporaryFolder("loom-cache")
        for (index, level, size) in [(0, "1", "32K"), (2, "2", "1024K"), (3, "3", "32768K")] {
            let dir = "\(root)/index\(index)"
            try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
            try "\(level)\n".write(toFile: dir + "/level", atomically: true, encoding: .utf8)
            try "\(size)\n".write(toFile: dir + "/size", atomically: true, encoding: .utf8)
        }
        #expect(Topology.cacheBytes(level: 2, root: root) == 1 << 20)
        #expect(Topology.cacheBytes(level: 3, root: root) == 32 << 20)
        #expect(Topology.cacheBytes(level: 2, root: root + "/missing") == nil)
    }
}
