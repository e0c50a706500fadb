// `loom bench project`: how a step would scale to W workers, measured on the one core this machine gives us.
//
// For each W the step's stages run here worker by worker, in sequence on this thread — each worker's real rows
// and tiles with the real plan, on the real model — and each worker's part of each stage is timed (best of
// several steps, the workers run in opposite orders on alternate steps), in turns with the one-worker step it is
// compared with. A stage takes as long as its slowest part; the projected step is the sum over stages plus the
// barriers the plan waits at, priced by a barrier model. It is an estimate: it leaves out memory-bandwidth
// contention between cores and cross-node traffic, and counts cache effects as this one core sees them.
import Foundation
import LoomConfig
import LoomData
import LoomKernels
import LoomNN

/// One worker count's projection, for one schedule.
public struct ProjectionResult: Codable, Sendable {
    /// The projected worker count.
    public var workers: Int
    /// The schedule projected (`auto` or `rows`).
    public var schedule: String
    /// The one-worker step it is measured against (ms), timed in turns with this worker count's schedules.
    public var oneWorkerMilliseconds: Double
    /// Sum over stages of the slowest worker's part (ms), the barriers' estimated cost (ms), and their total.
    public var largestShareMilliseconds: Double
    /// The barriers' estimated cost (ms).
    public var barrierMilliseconds: Double
    /// The projected step time (ms).
    public var stepMilliseconds: Double
    /// One worker's step time / (W × the projected step time), and W times that.
    public var efficiency: Double
    /// Projected speed-up over one worker.
    public var speedup: Double
    /// Barrier episodes per step.
    public var barriers: Int
    /// Each stage and its slowest worker's part (µs).
    public var stages: [StageTime]
}

/// One stage of a projected step: its slowest and fastest worker's part.
public struct StageTime: Codable, Sendable {
    /// The stage's name.
    public var stage: String
    /// Its slowest worker's part (µs).
    public var slowestMicroseconds: Double
    /// Its fastest worker's part (µs).
    public var fastestMicroseconds: Double
}

extension Bench {
    /// Estimated cost of `rounds` rounds of the dissemination barrier (a full barrier of W workers takes
    /// ⌈log₂ W⌉, a barrier within groups of G workers ⌈log₂ G⌉), each one cache-line hand-off between cores. A
    /// round costs what two pinned threads measure here, but at least `minimumRound` (0.2 µs, a hand-off between
    /// the dies of a many-core EPYC: two vCPUs of a VM may share a core and measure less).
    public static func barrierSeconds(rounds: Int, measuredTwo: Double) -> Double {
        Double(rounds) * max(measuredTwo, minimumRound)
    }

    /// The least a barrier round costs in the projection (seconds).
    public static let minimumRound = 0.2e-6

    /// The cost of one barrier episode between two pinned threads, measured.
    public static func measureBarrier(placements: [WorkerPlacement]) -> Double {
        guard placements.count >= 2 else { return 0.3e-6 }
        let pool = WorkerPool(placements: Array(placements.prefix(2)), pin: true)
        defer { pool.shutdown() }
        let barrier = pool.barrier
        let rounds = 20_000
        var best = Double.infinity
        for _ in 0..<3 {
            let start = monotonicSeconds()
            pool.run { w in for _ in 0..<rounds { barrier.wait(w) } }
            best = min(best, (monotonicSeconds() - start) / Double(rounds))
        }
        return best
    }

    /// Projects a step of `run`'s model for each worker count in `workers`, with the row-only schedule and the
    /// automatic one, on this thread. `steps` timed steps per worker count and schedule (each part keeps its best).
    /// Both are measured against the fastest one-worker step (the automatic schedule's, which packs its operands),
    /// timed again for each worker count, its steps interleaved with theirs: a machine that slows down or speeds
    /// up between worker counts (a shared VM's neighbours, clock changes) then moves both sides of the ratio
    /// alike. (Timed once, before every worker count, the wide model's one-worker step varied 2% between runs and
    /// its projected efficiency at 64 workers 0.93 to 0.99.)
    public static func project(_ run: TrainingRun, workers: [Int], steps: Int, barrierTwo: Double) -> [ProjectionResult]
    {
        let model = run.model
        let batch = run.config.training.batchSize
        let optimizer = Optimizer(run.config.optimizer, parameterCount: model.parameterCount)
        optimizer.weightDecay = Float(run.config.weightDecay)
        optimizer.clipping = run.config.clipping
        let buffers = ActivationBuffers(model: model, capacity: batch)
        let targets = BatchTargets(capacity: batch, width: model.outputWidth)
        let order = UnsafeMutablePointer<Int32>.allocate(capacity: batch)
        defer { order.deallocate() }
        for i in 0..<batch { order[i] = Int32(i % run.train.count) }
        let saved = [Float](UnsafeBufferPointer(start: model.parameters.pointer, count: model.parameterCount))
        var workspaces: [GemmWorkspace] = []
        /// A schedule for `w` workers and each worker's runner.
        func schedule(_ w: Int, _ policy: SchedulePolicy) -> TimedSchedule {
            while workspaces.count < w { workspaces.append(GemmWorkspace()) }
            let plan = StepPlan(
                model: model, batchSize: batch, workers: w, policy: policy, clipsByNorm: run.config.clipping.needsNorms)
            return TimedSchedule(
                plan: plan,
                runners: (0..<w).map {
                    StepRunner(model: model, buffers: buffers, plan: plan, workspace: workspaces[$0], worker: $0)
                })
        }
        let context = StepContext(data: run.train, order: order, targets: targets, optimizer: optimizer, model: model)
        var results: [ProjectionResult] = []
        for w in workers {
            var schedules = [schedule(1, .auto), schedule(w, .rows), schedule(w, .auto)]
            timeInTurns(&schedules, steps: steps, context: context)
            // Every worker count starts from the same weights, so each measures the same arithmetic.
            saved.withUnsafeBufferPointer { model.parameters.pointer.update(from: $0.baseAddress!, count: $0.count) }
            let single = schedules[0].seconds
            for schedule in schedules.dropFirst() {
                let plan = schedule.plan
                let barrierTime = barrierSeconds(rounds: plan.barrierRounds, measuredTwo: barrierTwo)
                let step = schedule.seconds + barrierTime
                results.append(
                    ProjectionResult(
                        workers: w, schedule: plan.policy.rawValue, oneWorkerMilliseconds: single * 1e3,
                        largestShareMilliseconds: schedule.seconds * 1e3, barrierMilliseconds: barrierTime * 1e3,
                        stepMilliseconds: step * 1e3, efficiency: single / (Double(w) * step), speedup: single / step,
                        barriers: plan.barriers, stages: schedule.stageTimes))
            }
        }
        return results
    }

    /// What every timed step reads: the batch's samples (`order` into `data`) and targets, the optimizer, the model.
    struct StepContext {
        let data: Dataset
        let order: UnsafePointer<Int32>
        let targets: BatchTargets
        let optimizer: Optimizer
        let model: Sequential
    }

    /// Runs `steps` timed steps (after two warm-up steps) of each schedule, the schedules taking turns a step each.
    static func timeInTurns(_ schedules: inout [TimedSchedule], steps: Int, context: StepContext) {
        let chunks = max(1, schedules.map(\.plan.chunks.count).max() ?? 1)
        let sums = UnsafeMutablePointer<Double>.allocate(capacity: chunks)
        sums.initialize(repeating: 0, count: chunks)
        defer { sums.deallocate() }
        let model = context.model
        for step in 0..<steps + 2 {
            let rule = context.optimizer.rule(
                step: step + 1, parameters: model.parameters.pointer, gradients: model.gradients.pointer)
            for i in schedules.indices {
                schedules[i].step(step, timed: step >= 2, rule: rule, context: context, sums: sums)
            }
        }
    }
}

/// A plan being timed: each of its workers' runners, and each part's best time so far.
struct TimedSchedule {
    let plan: StepPlan
    var runners: [StepRunner]
    /// The plan's stages but its barriers (priced, not timed).
    let stages: [StepPlan.Stage]
    /// best[stage][worker]: seconds.
    var best: [[Double]]

    init(plan: StepPlan, runners: [StepRunner]) {
        self.plan = plan
        self.runners = runners
        stages = plan.stages.filter { !StepPlan.isBarrier($0) }
        best = [[Double]](repeating: [Double](repeating: .infinity, count: runners.count), count: stages.count)
    }

    /// The sum over stages of each stage's slowest part.
    var seconds: Double { best.reduce(0) { $0 + ($1.max() ?? 0) } }

    /// Each stage's slowest and fastest part.
    var stageTimes: [StageTime] {
        zip(stages, best).map { stage, parts in
            StageTime(
                stage: "\(stage)", slowestMicroseconds: (parts.max() ?? 0) * 1e6,
                fastestMicroseconds: (parts.min() ?? 0) * 1e6)
        }
    }

    /// Runs step `step` worker by worker in each stage, keeping each part's best time when `timed`.
    mutating func step(
        _ step: Int, timed: Bool, rule: UpdateRule, context: Bench.StepContext, sums: UnsafeMutablePointer<Double>
    ) {
        // The weights as the previous schedule's step left them, in this plan's packed copies (untimed).
        for runner in runners { runner.packWeights() }
        for r in runners.indices {
            runners[r].begin(rows: plan.batchSize, pass: Pass(training: true, seed: 1, step: UInt64(step + 1)))
        }
        // Alternate steps run the workers in opposite orders, so that each part is timed at least once right
        // after a part of the same stage (on a many-core machine they run together and share what they read),
        // not always after another layer's part whose streaming evicted its operands from this core's caches.
        let sequence = step % 2 == 0 ? Array(runners.indices) : Array(runners.indices.reversed())
        for (s, stage) in stages.enumerated() {
            for w in sequence {
                let start = monotonicSeconds()
                run(stage, worker: w, rule: rule, context: context, sums: sums)
                if timed { best[s][w] = min(best[s][w], monotonicSeconds() - start) }
            }
        }
    }

    /// Worker `w`'s part of `stage`.
    private func run(
        _ stage: StepPlan.Stage, worker w: Int, rule: UpdateRule, context: Bench.StepContext,
        sums: UnsafeMutablePointer<Double>
    ) {
        let runner = runners[w]
        switch stage {
        case .gather:
            let rows = runner.rows
            context.targets.gather(
                context.data, context.order + rows.lowerBound, rows: rows, input: runner.buffers.input,
                features: context.model.inputWidth)
        case .loss: _ = runner.loss(targets: context.targets.targets(for: context.data))
        case .parameters: runner.parameters(update: plan.clipsByNorm ? nil : rule)
        case .penalty: runner.penalty(into: sums)
        case .gradientNorms: runner.gradientNorms(into: sums)
        case .clippedUpdate: runner.clippedUpdate(rule, clipping: context.optimizer.clipping, squares: sums)
        default: runner.run(stage)
        }
    }
}
