import LoomNN
import Testing

@testable import LoomEngine

@Suite("Across ranks: early starts and CPU shares")
struct RankPlanTests {
    /// The starts of a plan, in order.
    func starts(_ plan: StepPlan) -> [StepPlan.Activation] {
        plan.stages.compactMap { if case .exchange(.start(let a)) = $0 { a } else { nil } }
    }

    @Test("activations start right after the stages that finish them, never without a barrier on several workers")
    func earlyStarts() {
        let model = scheduleModel()
        // One worker a rank: every dense layer's input and output gradient starts as soon as it is final.
        let one = StepPlan(model: model, batchSize: 128, workers: 1, ranks: 2, earlyStarts: .all)
        #expect(
            starts(one) == [
                .input(layer: 2), .input(layer: 4), .input(layer: 5), .outputGradient(layer: 5),
                .outputGradient(layer: 4), .outputGradient(layer: 2),
            ])
        // Each start comes just before the product that reads it (after its layer's dz on the way back).
        for (i, stage) in one.stages.enumerated() {
            guard case .exchange(.start(let a)) = stage else { continue }
            switch a {
            case .input(let l):
                #expect(one.stages[i + 1] == .forward(layer: l, split: Split(rowGroups: 1, columnGroups: 1)))
            case .outputGradient(let l):
                #expect(one.stages[i + 1] == .inputGradient(layer: l, split: Split(rowGroups: 1, columnGroups: 1)))
            }
        }
        // Several workers: only where a barrier already waits for all of them.
        for policy in [StepPlan.Policy.rows, .auto, .widest] {
            let plan = StepPlan(
                model: model, batchSize: 128, workers: 4, policy: policy, ranks: 3, rank: 1, earlyStarts: .all)
            for (i, stage) in plan.stages.enumerated()
            where { if case .exchange(.start) = stage { true } else { false } }() {
                #expect(plan.stages[i - 1] == .barrier, "\(policy): \(stage) at \(i)")
                #expect(plan.stages[i + 1] != .barrier)
            }
            if policy == .widest { #expect(!starts(plan).isEmpty) }
        }
        // One process, or early starts off: nothing starts early, the activations exchange sends everything.
        #expect(starts(StepPlan(model: model, batchSize: 128, workers: 1, earlyStarts: .all)).isEmpty)
        #expect(starts(StepPlan(model: model, batchSize: 128, workers: 1, ranks: 2, earlyStarts: .none)).isEmpty)
    }

    @Test("by default only blocks of at least 512 KiB a rank start early (the wide model's 2 MB, not the book's)")
    func largeStarts() {
        let book = Sequential(
            inputWidth: 784, layers: [Dense(units: 512, activation: .relu), Dense(units: 10, activation: .softmax)],
            loss: .sparseCategoricalCrossentropy)
        #expect(starts(StepPlan(model: book, batchSize: 128, workers: 1, ranks: 2)).isEmpty)
        let wide = wideModel()
        // 256 rows a rank × 2048 floats = 2 MiB; layer 2's ∂L/∂z (10 wide, 10 KiB) stays in the exchange.
        #expect(
            starts(StepPlan(model: wide, batchSize: 512, workers: 1, ranks: 2)) == [
                .input(layer: 1), .input(layer: 2), .outputGradient(layer: 1),
            ])
        // The threshold is a rank's block: 1,024 rows on 16 ranks are 64 a rank, 512 KiB of 2048 floats.
        #expect(starts(StepPlan(model: wide, batchSize: 1024, workers: 1, ranks: 16)).count == 3)
        #expect(starts(StepPlan(model: wide, batchSize: 1008, workers: 1, ranks: 16)).isEmpty)
    }

    @Test("ranks sharing CPUs split them, one each when there are more ranks than CPUs, and all keep the same count")
    func cpuShares() {
        func given(_ cpus: [[Int]], hosts: [String]? = nil) -> [RankPlacement] {
            cpus.enumerated().map { RankPlacement(rank: $0.offset, host: hosts?[$0.offset] ?? "a", cpus: $0.element) }
        }
        // mpirun --bind-to none: every rank sees all CPUs.
        #expect(Communicator.share(given([[0, 1, 2, 3], [0, 1, 2, 3]])).map(\.cpus) == [[0, 1], [2, 3]])
        // 3 ranks, 2 CPUs: one each (two share one), never none (which would fall back to every CPU).
        #expect(Communicator.share(given([[0, 1], [0, 1], [0, 1]])).map(\.cpus) == [[0], [1], [0]])
        // 3 ranks, 4 CPUs: 1 + 1 + 2 would give the ranks different thread counts; each keeps 1.
        #expect(
            Communicator.share(given([[0, 1, 2, 3], [0, 1, 2, 3], [0, 1, 2, 3]])).map(\.cpus) == [[0], [1], [2]])
        // Bound ranks on two hosts of different sizes: the bigger keeps as many CPUs as the smaller has.
        #expect(
            Communicator.share(given([[0, 1, 2, 3], [0, 1]], hosts: ["a", "b"])).map(\.cpus) == [[0, 1], [0, 1]])
    }
}
