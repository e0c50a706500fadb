// The coordinator: owns the model's parameters and optimizer state, the worker pool and the step's plan.
//
// One training step, on W workers, walks the stages of a StepPlan (StepPlan.swift says who computes which tile;
// StepRunner.swift what a stage means for one worker):
//   gather      each worker converts its rows of the shuffled batch to floats (first touch: its NUMA node)
//   forward     every layer's product, cut into row blocks, column blocks or 2-D tiles (relu fused)
//   loss        per-row loss, and ∂L/∂z = (softmax − onehot)/n
//   backward    each layer's input gradient dZ·Wᵀ, cut the same way (relu mask fused)
//   ── barrier ──
//   parameters  each worker computes its blocks of the weight gradients over *all* n rows ("owner computes":
//               the batch sum runs in the same order whatever W) and applies the optimizer to exactly those
//               parameters, while they are in its cache
//   ── barrier ──  (the next step's forward reads the new weights)
// Barriers stand only where a stage reads another worker's output. No per-worker gradient buffers, no reduction
// pass: the average is computed where it is owned. Because every element is one fixed FMA chain whichever tile
// computes it (see Gemm.swift), the trained weights are bitwise identical for any worker count and cut.
import Atomics
import CSupport
import Foundation
import LoomConfig
import LoomData
import LoomKernels
import LoomNN

/// Where a run is, exactly enough to continue it: the epoch to run (1-based) and the steps of it already done,
/// the shuffling generator as it was when that epoch began (so its order can be drawn again), the epoch's
/// running loss sums, and the global optimizer step.
public struct ResumePoint: Sendable, Equatable {
    /// The epoch to run, from 1.
    public var epoch: Int
    /// Steps of that epoch already done.
    public var position: Int
    /// The shuffling generator as it was when the epoch began.
    public var shuffleState: Random
    /// The epoch's running loss sum.
    public var lossSum: Double
    /// The epoch's running metric sum.
    public var correctSum: Double
    /// Samples of the epoch seen so far.
    public var seen: Int
    /// The global optimizer step.
    public var step: Int
    /// A resume point from its fields.
    public init(
        epoch: Int, position: Int, shuffleState: Random, lossSum: Double, correctSum: Double, seen: Int, step: Int
    ) {
        self.epoch = epoch
        self.position = position
        self.shuffleState = shuffleState
        self.lossSum = lossSum
        self.correctSum = correctSum
        self.seen = seen
        self.step = step
    }
}

/// How `fit` starts, stops, and reports where it is.
public struct FitControl {
    /// Continue from here instead of epoch 1 (set the trainer's parameters, slots and step first).
    public var resume: ResumePoint?
    /// Stop once the global optimizer step reaches this.
    public var maxSteps: Int?
    /// Call `checkpoint` also every this many global steps (0: only at epoch ends).
    public var checkpointEverySteps = 0
    /// Called between steps (workers idle) at epoch ends, every `checkpointEverySteps`, and when stopping early.
    public var checkpoint: (ResumePoint) -> Void = { _ in }
    /// Called after each epoch's record is complete (validation included).
    public var epochEnded: (EpochRecord) -> Void = { _ in }
    /// Asked after each whole epoch (its checkpoint written): true ends the run there (early stopping).
    public var stopAfterEpoch: (EpochRecord) -> Bool = { _ in false }
    /// What a non-finite batch loss does, and how many skipped batches in a row end the run.
    public var onNaN = NaNPolicy.stop
    /// Skipped batches in a row that end the run.
    public var maxSkippedBatches = 10
    /// Watch for SIGINT/SIGTERM (installed by the caller) and stop after the step in progress.
    public var stopOnSignal = false
    /// Start at epoch 1, run every epoch, stop on a non-finite loss.
    public init() {}
}

/// Why `fit` ended before its last epoch.
public enum FitStop: Sendable, Equatable {
    /// A batch's loss was not finite (NaN or infinite) at this epoch and global step; nothing was updated.
    case diverged(epoch: Int, step: Int)
    /// SIGINT or SIGTERM arrived; the run stopped after `point`'s step (and checkpointed there, if asked).
    case signal(Int32, ResumePoint)
    /// The step limit was reached.
    case stepLimit
    /// A callback (early stopping) ended the run after this epoch.
    case callback(epoch: Int)
}

/// One epoch's results, as far as this process ran it. A run that stops mid-epoch (`--max-steps`, a signal)
/// records that part with `complete` false; a resumed epoch counts only the steps run after resuming, while its
/// loss and accuracy cover the whole epoch so far (the checkpoint carries the earlier sums).
public struct EpochRecord: Sendable, Codable, Equatable {
    /// The epoch, from 1.
    public var epoch: Int
    /// Optimizer steps this process ran in the epoch, and the samples they processed.
    public var steps: Int
    /// Samples those steps processed.
    public var samples: Int
    /// How far through the epoch the record ends (1 for a complete epoch), and the global optimizer step there.
    public var fraction: Double
    /// The global optimizer step at the record's end.
    public var globalStep: Int
    /// The mean training loss over the epoch so far.
    public var loss: Double
    /// The metric reported beside the loss (`metric`): accuracy, or for regression the mean absolute error.
    public var accuracy: Double
    /// The validation loss, when there is a validation set.
    public var valLoss: Double?
    /// The validation metric, when there is a validation set.
    public var valAccuracy: Double?
    /// What `accuracy` and `valAccuracy` measure.
    public var metric = Metric.accuracy
    /// Seconds this process spent on the epoch's steps (validation excluded), and samples / seconds.
    public var seconds: Double
    /// Training samples per second.
    public var samplesPerSecond: Double

    /// Whether the whole epoch ran.
    public var complete: Bool { fraction >= 1 }
}

/// What the progress callback sees while an epoch runs.
public struct TrainingProgress: Sendable {
    /// The epoch, from 1.
    public var epoch: Int
    /// The epochs of the run.
    public var epochs: Int
    /// The step within the epoch, from 1.
    public var step: Int
    /// Steps in the epoch.
    public var steps: Int
    /// Seconds since the epoch began.
    public var elapsed: Double
    /// The running mean loss.
    public var loss: Double
    /// The running metric (`metric`): accuracy, or for regression the mean absolute error.
    public var accuracy: Double
    /// What `accuracy` measures.
    public var metric = Metric.accuracy
    /// Set on the final callback of an epoch.
    public var record: EpochRecord?
}

/// Loss and metrics over a data set.
public struct Evaluation: Sendable {
    /// The mean loss.
    public var loss: Double
    /// The fraction of samples whose predicted class is the target's (classification).
    public var accuracy: Double
    /// Samples evaluated.
    public var count: Int
    /// confusion[true][predicted] (classification).
    public var confusion: [[Int]]
    /// Regression (real-valued targets with a regression loss): the mean absolute error and the root mean
    /// squared error over samples and outputs; nil for classification.
    public var meanAbsoluteError: Double?
    /// Regression: the root mean squared error; nil for classification.
    public var rootMeanSquaredError: Double?

    /// What the loss reports beside itself.
    public var metric: Metric { meanAbsoluteError == nil ? .accuracy : .meanAbsoluteError }
    /// The reported metric's value: accuracy, or the mean absolute error.
    public var metricValue: Double { meanAbsoluteError ?? accuracy }
}

/// A model, its optimizer and a pool of workers that train and evaluate it.
public final class Trainer: @unchecked Sendable {
    // Sendable: the mutable state shared with worker threads lives in `model`, `optimizer`, `buffers`, `shared`
    // (see their comments); the rest is touched by the main thread only.
    /// The network.
    public let model: Sequential
    /// The optimizer and its slots.
    public let optimizer: Optimizer
    /// The pinned worker threads.
    public let pool: WorkerPool
    /// Samples per step.
    public let batchSize: Int
    /// Seeds the shuffling and dropout.
    public let seed: UInt64
    /// Optimizer steps taken so far (the next update is step `step + 1`).
    public private(set) var step = 0
    /// Set when the last `fit` ended early, and why.
    public private(set) var stopped: FitStop?
    let buffers: ActivationBuffers
    let shared: SharedState
    /// Who computes which part of a step (see StepPlan), and where its memory lives (see NumaLayout).
    public let plan: StepPlan
    /// The barrier the plan's group barriers wait at (the pool's own barrier when the plan has none).
    let groupBarrier: SpinBarrier
    /// Where the parameters and slots live (NUMA nodes).
    public let numa: NumaLayout
    /// The processes training this model together (one, unless started by an MPI launcher), and what worker 0
    /// sends them during a step.
    public let communicator: Communicator
    let exchanger: Exchanger?

    /// Builds the pool (pinned per `placements`) and the batch buffers for up to `batchSize` rows; throws when
    /// there is no worker, or more workers than rows in a batch.
    public convenience init(
        model: Sequential, optimizer: OptimizerSpec, placements: [WorkerPlacement], batchSize: Int,
        seed: UInt64, pin: Bool = true, schedule: StepPlan.Policy = .auto,
        learningRate: LearningRateSchedule = .constant, weightDecay: Float = 0, clipping: GradientClipping = .none,
        communicator: Communicator = .single
    ) throws(LoomError) {
        guard batchSize >= 1 else { throw .usage("batch size \(batchSize): a batch needs at least one sample") }
        guard !placements.isEmpty else { throw .usage("no workers: a trainer needs at least one worker placement") }
        guard batchSize >= placements.count else {
            throw .usage(
                "\(placements.count) workers for a batch of \(batchSize): every worker needs a row of each batch; use at most \(batchSize) workers"
            )
        }
        self.init(
            checked: model, optimizer: optimizer, placements: placements, batchSize: batchSize, seed: seed, pin: pin,
            schedule: schedule, learningRate: learningRate, weightDecay: weightDecay, clipping: clipping,
            communicator: communicator)
    }

    /// The initializer for callers that have checked the worker count against the batch size.
    init(
        checked model: Sequential, optimizer: OptimizerSpec, placements: [WorkerPlacement], batchSize: Int,
        seed: UInt64, pin: Bool = true, schedule: StepPlan.Policy = .auto,
        learningRate: LearningRateSchedule = .constant, weightDecay: Float = 0, clipping: GradientClipping = .none,
        communicator: Communicator = .single
    ) {
        assert(batchSize >= placements.count && !placements.isEmpty, "checked by the caller")
        self.model = model
        self.optimizer = Optimizer(optimizer, parameterCount: model.parameterCount)
        self.optimizer.schedule = learningRate
        self.optimizer.weightDecay = weightDecay
        self.optimizer.clipping = clipping
        self.batchSize = batchSize
        self.seed = seed
        pool = WorkerPool(placements: placements, pin: pin)
        self.communicator = communicator
        plan = StepPlan(
            model: model, batchSize: batchSize, workers: placements.count, policy: schedule,
            clipsByNorm: clipping.needsNorms, ranks: communicator.size, rank: communicator.rank,
            earlyStarts: Trainer.earlyStarts)
        groupBarrier = plan.groupSize.map { SpinBarrier(parties: placements.count, groupSize: $0) } ?? pool.barrier
        // Each parameter's value, gradient and optimizer state on its owner's node (a no-op on one node).
        numa = NumaLayout(model: model, plan: plan, placements: placements)
        numa.move([model.parameters.pointer, model.gradients.pointer] + self.optimizer.slots.map(\.pointer))
        buffers = ActivationBuffers(model: model, capacity: batchSize)
        shared = SharedState(
            workers: placements.count, batchSize: batchSize, targetWidth: model.outputWidth, chunks: plan.chunks.count,
            distributed: communicator.isDistributed)
        exchanger =
            communicator.isDistributed
            ? Exchanger(communicator: communicator, plan: plan, model: model, buffers: buffers) : nil
        // Each worker allocates its GEMM workspace on its own CPU (first touch on its node).
        let shared = self.shared
        pool.run { w in shared.workspaces[w] = GemmWorkspace() }
    }

    deinit { pool.shutdown() }

    /// Which activations start travelling between ranks as soon as they are final (`StepPlan.Exchange.start`):
    /// the large ones, unless the environment sets `LOOM_OVERLAP=0` (none: to measure what starting early
    /// hides) or `LOOM_OVERLAP=all` (every one: for tests). Either way the same values arrive: the weights are
    /// the same.
    static var earlyStarts: StepPlan.EarlyStarts {
        switch ProcessInfo.processInfo.environment["LOOM_OVERLAP"] {
        case "0": .none
        case "all": .all
        default: .large
        }
    }

    /// Worker threads.
    public var workers: Int { pool.count }

    /// Trains for `epochs` epochs. `progress` is called on this thread about 10 times a second and at each
    /// epoch's end. With `shuffle`, each epoch visits the samples in a new order from a generator seeded by
    /// the run's seed. `stepsPerEpoch` cuts each epoch short (benchmarks); `control` resumes, stops after a
    /// number of steps and asks for checkpoints. Returns a record per epoch this call ran steps of, the last one
    /// partial when the run stopped mid-epoch.
    public func fit(
        _ train: Dataset, validation: Dataset? = nil, epochs: Int, shuffle: Bool = true,
        stepsPerEpoch: Int? = nil, control: FitControl = FitControl(),
        progress: (TrainingProgress) -> Void = { _ in }
    ) -> [EpochRecord] {
        var rng = control.resume?.shuffleState ?? Random(seed: seed ^ 0x5348_5546_464C_4521)  // the shuffling stream
        let order = UnsafeMutablePointer<Int32>.allocate(capacity: max(1, train.count))
        defer { order.deallocate() }
        var records: [EpochRecord] = []
        let steps = min((train.count + batchSize - 1) / batchSize, stepsPerEpoch ?? Int.max)
        let firstEpoch = control.resume?.epoch ?? 1
        stopped = nil
        shared.policy = StepPolicy(
            skipOnNaN: control.onNaN == .skipBatch, maxSkipped: control.maxSkippedBatches,
            watchSignals: control.stopOnSignal)
        guard firstEpoch <= epochs else { return [] }
        let metric = model.loss.metric(valueTargets: train.targetWidth > 0)
        for epoch in firstEpoch...epochs {
            let epochStart = rng  // what a checkpoint stores to redo this epoch's shuffle
            if shuffle {
                shuffledIndices(train.count, rng: &rng, into: order)
            } else {
                for i in 0..<train.count { order[i] = Int32(i) }
            }
            shared.resetProgress()
            var position = 0
            if let r = control.resume, epoch == firstEpoch {
                position = r.position
                shared.restoreProgress(steps: r.position, lossSum: r.lossSum, correctSum: r.correctSum, seen: r.seen)
            }
            let epochBase = step - position  // the global step count when this epoch began
            let clock = EpochClock(
                epoch: epoch, steps: steps, start: position, batchSize: batchSize, samples: train.count,
                metric: metric)
            shared.order = UnsafePointer(order)
            func report(_ record: EpochRecord?) {
                let (done, loss, correct, seen) = shared.progress()
                progress(
                    TrainingProgress(
                        epoch: epoch, epochs: epochs, step: done, steps: steps, elapsed: clock.elapsed,
                        loss: seen > 0 ? loss / Double(seen) : 0, accuracy: seen > 0 ? correct / Double(seen) : 0,
                        metric: metric, record: record))
            }
            /// Where the run is, for a checkpoint: mid-epoch, or at the start of the next one.
            func resumePoint() -> ResumePoint {
                if position == steps {
                    return ResumePoint(
                        epoch: epoch + 1, position: 0, shuffleState: rng, lossSum: 0, correctSum: 0, seen: 0, step: step
                    )
                }
                let (_, loss, correct, seen) = shared.progress()
                return ResumePoint(
                    epoch: epoch, position: position, shuffleState: epochStart, lossSum: loss, correctSum: correct,
                    seen: seen, step: step)
            }
            /// The record of the steps run so far, passed to the progress and epoch callbacks.
            func close(validate: Bool) {
                var record = clock.record(at: position, globalStep: step, progress: shared.progress())
                if validate, let validation, validation.count > 0 {
                    let v = evaluate(validation)
                    record.valLoss = v.loss
                    record.valAccuracy = v.metricValue
                }
                records.append(record)
                report(record)
                control.epochEnded(record)
            }
            // Run the epoch in segments that end where a checkpoint is due or the run must stop.
            while position < steps {
                var end = steps
                if control.checkpointEverySteps > 0 {
                    let next = (step / control.checkpointEverySteps + 1) * control.checkpointEverySteps
                    end = min(end, next - epochBase)
                }
                if let limit = control.maxSteps { end = min(end, max(position, limit - epochBase)) }
                if end == position {  // the step limit was reached before this epoch
                    stopped = .stepLimit
                    return records
                }
                pool.run(epochJob(train, steps: position..<end, firstStep: epochBase), tick: { report(nil) })
                exchanger?.unpackArrived()
                let outcome = shared.outcome
                if outcome.kind == 1 {  // a diverged batch: no update was made
                    step = outcome.step - 1
                    stopped = .diverged(epoch: epoch, step: outcome.step)
                    return records
                }
                // Ran to `end`, or a signal stopped the job after a whole step.
                position = outcome.kind == 2 ? outcome.step - epochBase : end
                step = epochBase + position
                if outcome.kind == 2 {
                    stopped = .signal(Int32(outcome.signal), resumePoint())
                    close(validate: position == steps)
                    control.checkpoint(resumePoint())
                    return records
                }
                let stopping = control.maxSteps.map { step >= $0 } ?? false
                let due = control.checkpointEverySteps > 0 && step % control.checkpointEverySteps == 0
                if position < steps && (stopping || due) { control.checkpoint(resumePoint()) }
                if stopping && position < steps {
                    stopped = .stepLimit
                    close(validate: false)
                    return records
                }
            }
            close(validate: true)
            control.checkpoint(resumePoint())
            if let record = records.last, control.stopAfterEpoch(record) {
                if epoch < epochs { stopped = .callback(epoch: epoch) }
                return records
            }
            if let limit = control.maxSteps, step >= limit {
                if epoch < epochs { stopped = .stepLimit }
                return records
            }
        }
        return records
    }

    /// What crossed between ranks so far, per step (nil with one rank).
    public var communication: Communication? {
        guard let exchanger, exchanger.steps > 0 else { return nil }
        let steps = Double(exchanger.steps)
        return Communication(
            bytesPerStep: Double(exchanger.bytesSent) / steps,
            startedBytesPerStep: Double(exchanger.bytesStarted) / steps,
            secondsPerStep: exchanger.seconds / steps)
    }

    /// Gives every rank the whole optimizer state (each rank updates only the slots of its own parameters during
    /// training; the parameters themselves are exchanged every step). Every rank must call it, between jobs.
    public func synchronizeState() {
        guard let exchanger else { return }
        for slot in optimizer.slots { exchanger.parameters(slot.pointer, counted: false) }
    }

    /// Puts the trainer at `point`'s optimizer step (its parameters and optimizer slots are set by the caller).
    public func resume(at point: ResumePoint) { step = point.step }

    /// The job of steps `steps` of an epoch over `shared.order`: optimizer steps firstStep+s+1 for s in steps.
    /// Each worker walks the plan's stages; `StepRunner` says what a stage means for one worker.
    func epochJob(_ data: Dataset, steps: Range<Int>, firstStep: Int) -> WorkerJob {
        let (model, optimizer, buffers, shared, barrier, plan) = (model, optimizer, buffers, shared, pool.barrier, plan)
        let (exchanger, groupBarrier) = (exchanger, groupBarrier)
        let (batchSize, seed) = (batchSize, seed)
        return { w in
            var runner = StepRunner(
                model: model, buffers: buffers, plan: plan, workspace: shared.workspaces[w]!, worker: w)
            let order = shared.order!
            let policy = shared.policy
            let targets = shared.batch.targets(for: data)
            var skippedInARow = 0
            // The forward products read packed weights: each worker packs the blocks it owns before the first.
            if plan.packsWeights {
                runner.packWeights()
                runner.packOtherRanksWeights()
                barrier.wait(w)
            }
            for s in steps {
                let start = s * batchSize
                let n = min(batchSize, data.count - start)
                let t = firstStep + s + 1
                let rule = optimizer.rule(
                    step: t, parameters: model.parameters.pointer, gradients: model.gradients.pointer)
                var skipping = false  // this batch's loss was not finite and it is skipped (on_nan: skip_batch)
                runner.begin(rows: n, pass: Pass(training: true, seed: seed, step: UInt64(t)))
                for stage in plan.stages {
                    switch stage {
                    case .barrier:
                        barrier.wait(w)
                    case .groupBarrier:
                        groupBarrier.wait(w)
                    case .gather:
                        let rows = runner.gatherRows
                        guard !rows.isEmpty else { continue }
                        shared.batch.gather(
                            data, order + start + rows.lowerBound, rows: rows, input: buffers.input,
                            features: model.inputWidth)
                    case .exchange(let what):
                        guard w == 0, let exchanger else { continue }
                        exchanger.watch.enter(step: t)
                        shared.exchange(what, exchanger, batch: n, step: t, parameters: model.parameters.pointer)
                        exchanger.watch.leave()
                    case .penalty:
                        runner.penalty(into: shared.penalties)
                    case .loss:
                        if runner.loss(targets: targets) { shared.nonFiniteStep.store(t, ordering: .relaxed) }
                    case .parameters:
                        // Every worker reads the same flags after the barrier before, so all take the same branch.
                        if shared.nonFiniteStep.load(ordering: .relaxed) == t {
                            skippedInARow += 1
                            if !policy.skipOnNaN || skippedInARow > policy.maxSkipped {
                                // Stop before any update: leave this batch's gradients for diagnosis.
                                runner.parameters(update: nil)
                                if w == 0 { shared.outcome = StepOutcome(kind: 1, step: t, signal: 0) }
                                barrier.wait(w)
                                return
                            }
                            if w == 0 { shared.skipped += 1 }
                            skipping = true
                            continue
                        }
                        skippedInARow = 0
                        if w == 0 { shared.record(buffers, rows: n, plan: plan) }
                        // Clipping by norm stores the gradients; the update waits for their norms.
                        runner.parameters(update: plan.clipsByNorm ? nil : rule)
                        if w == 0 && policy.watchSignals {
                            // Across ranks, the signal every rank agreed on in the exchange (all stop together).
                            let signal = exchanger == nil ? Int(loom_pending_signal()) : shared.agreedSignal
                            if signal != 0 { shared.outcome = StepOutcome(kind: 2, step: t, signal: signal) }
                        }
                    case .gradientNorms:
                        if !skipping { runner.gradientNorms(into: shared.squares) }
                    case .clippedUpdate:
                        if !skipping {
                            runner.clippedUpdate(rule, clipping: optimizer.clipping, squares: shared.allSquares)
                        }
                    default:
                        runner.run(stage)
                    }
                }
                if shared.outcome.kind != 0 { return }  // written by worker 0 before the last barrier
            }
        }
    }

    /// Loss, accuracy and confusion matrix over `data` (no dropout), computed by all workers: each takes a
    /// contiguous share of the samples, in chunks of its share of the batch buffers.
    public func evaluate(_ data: Dataset) -> Evaluation {
        let count = data.count
        let loss = UnsafeMutablePointer<Float>.allocate(capacity: max(1, count))
        let predicted = UnsafeMutablePointer<Int32>.allocate(capacity: max(1, count))
        let regression = model.loss.metric(valueTargets: data.targetWidth > 0) == .meanAbsoluteError
        let outputs =
            regression ? UnsafeMutablePointer<Float>.allocate(capacity: max(1, count * data.targetWidth)) : nil
        defer {
            loss.deallocate()
            predicted.deallocate()
            outputs?.deallocate()
        }
        infer(data, loss: loss, predicted: predicted, probabilities: outputs)
        var sum = 0.0
        var confusion = Array(
            repeating: Array(repeating: 0, count: max(data.classes, model.outputWidth)),
            count: max(data.classes, model.outputWidth))
        var correct = 0
        for i in 0..<count {
            sum += Double(loss[i])
            let truth = Int(data.label(i))
            let guess = Int(predicted[i])
            if truth == guess { correct += 1 }
            if truth < confusion.count && guess < confusion.count { confusion[truth][guess] += 1 }
        }
        // As in Keras, the reported loss includes the regularizers' penalty.
        var result = Evaluation(
            loss: (count > 0 ? sum / Double(count) : 0) + penalty(),
            accuracy: count > 0 ? Double(correct) / Double(count) : 0,
            count: count, confusion: confusion)
        if let outputs {
            // Σ|y − t| and Σ(y − t)² over every output of every sample, in sample order.
            var absolute = 0.0
            var squares = 0.0
            let width = data.targetWidth
            for i in 0..<count {
                for j in 0..<width {
                    let d = Double(outputs[i * width + j]) - Double(data.target(i, j))
                    absolute += abs(d)
                    squares += d * d
                }
            }
            let n = Double(max(1, count * width))
            result.meanAbsoluteError = absolute / n
            result.rootMeanSquaredError = (squares / n).squareRoot()
        }
        return result
    }

    /// The regularizers' penalty l1·Σ|w| + l2·Σw² at the current weights, summed chunk by chunk in the plan's
    /// order (the same number the training step adds to each batch's loss).
    public func penalty() -> Double {
        var total = 0.0
        for chunk in plan.chunks {
            guard let r = chunk.regularizer else { continue }
            let sums = absAndSquareSums(model.parameters.pointer + chunk.range.lowerBound, count: chunk.range.count)
            total += r.penalty(absSum: sums.abs, squareSum: sums.squares)
        }
        return total
    }

    /// Class probabilities (or outputs) for every sample of `data`, row-major [count × outputs].
    public func predict(_ data: Dataset) -> [Float] {
        var out = [Float](repeating: 0, count: data.count * model.outputWidth)
        let loss = UnsafeMutablePointer<Float>.allocate(capacity: max(1, data.count))
        let predicted = UnsafeMutablePointer<Int32>.allocate(capacity: max(1, data.count))
        defer {
            loss.deallocate()
            predicted.deallocate()
        }
        out.withUnsafeMutableBufferPointer {
            infer(data, loss: loss, predicted: predicted, probabilities: $0.baseAddress!)
        }
        return out
    }

    /// Forward passes over `data` on all workers: per-sample loss, predicted class, and optionally outputs.
    func infer(
        _ data: Dataset, loss: UnsafeMutablePointer<Float>, predicted: UnsafeMutablePointer<Int32>,
        probabilities: UnsafeMutablePointer<Float>?
    ) {
        let (model, buffers, shared) = (model, buffers, shared)
        let (capacity, workers, count) = (batchSize, pool.count, data.count)
        let features = model.inputWidth
        let outputs = model.outputWidth
        let last = model.layers.count - 1
        let sink = InferenceSink(loss: loss, predicted: predicted, probabilities: probabilities)
        pool.run { w in
            let workspace = shared.workspaces[w]!
            let (targets, indices) = (shared.batch.targets(for: data), shared.indices)
            let region = shard(capacity, part: w, of: workers)
            let samples = shard(count, part: w, of: workers)
            var i = samples.lowerBound
            let end = samples.upperBound
            while i < end {
                let n = min(region.count, end - i)
                let rows = region.lowerBound..<region.lowerBound + n
                for r in 0..<n { indices[rows.lowerBound + r] = Int32(i + r) }
                shared.batch.gather(
                    data, indices + rows.lowerBound, rows: rows, input: buffers.input, features: features)
                model.forward(buffers, rows: rows, pass: Pass(training: false), workspace: workspace)
                // Without a gradient the loss leaves probabilities in the last output (the fused softmax too).
                model.lossAndGradient(buffers, rows: rows, targets: targets, batchSize: n, gradient: false)
                let y = buffers.output(last, rows)
                for r in 0..<n {
                    sink.loss[i + r] = buffers.rowLoss[rows.lowerBound + r]
                    let yr = y.row(r)
                    var best = 0
                    if outputs == 1 {
                        best = yr[0] > 0.5 ? 1 : 0
                    } else {
                        for j in 1..<outputs where yr[j] > yr[best] { best = j }
                    }
                    sink.predicted[i + r] = Int32(best)
                    if let p = sink.probabilities { (p + (i + r) * outputs).update(from: yr, count: outputs) }
                }
                i += n
            }
        }
    }
}

/// How a job ended (see SharedState.outcome).
struct StepOutcome: Sendable {
    var kind: Int
    var step: Int
    var signal: Int
}

/// The per-fit rules every worker applies identically.
struct StepPolicy: Sendable {
    var skipOnNaN: Bool
    var maxSkipped: Int
    var watchSignals: Bool
}

/// Times the part of an epoch that this process runs and makes its record.
struct EpochClock {
    let epoch: Int
    let steps: Int
    /// The position the epoch started from in this process (non-zero when resumed mid-epoch).
    let start: Int
    let batchSize: Int
    let samples: Int
    let metric: Metric
    let began = Date()

    var elapsed: Double { Date().timeIntervalSince(began) }

    /// The record of steps `start..<position`: samples processed, seconds taken, and the epoch's running loss
    /// and accuracy (`progress` as `SharedState.progress()` returns it).
    func record(at position: Int, globalStep: Int, progress: (Int, Double, Double, Int)) -> EpochRecord {
        let seconds = elapsed
        let processed = min(position * batchSize, samples) - min(start * batchSize, samples)
        let (_, loss, correct, seen) = progress
        return EpochRecord(
            epoch: epoch, steps: position - start, samples: processed, fraction: Double(position) / Double(steps),
            globalStep: globalStep, loss: loss / Double(max(1, seen)), accuracy: correct / Double(max(1, seen)),
            valLoss: nil, valAccuracy: nil, metric: metric, seconds: seconds,
            samplesPerSecond: seconds > 0 ? Double(processed) / seconds : 0)
    }
}

/// Part `part` of `parts` of 0..<n: contiguous, sizes differing by at most one, together covering 0..<n once.
/// Rows of a batch are split among workers this way (the last, short batch of an epoch too).
@inline(__always)
public func shard(_ n: Int, part: Int, of parts: Int) -> Range<Int> {
    n * part / parts..<n * (part + 1) / parts
}

/// Where inference writes per-sample results; workers write disjoint sample ranges.
struct InferenceSink: @unchecked Sendable {
    let loss: UnsafeMutablePointer<Float>
    let predicted: UnsafeMutablePointer<Int32>
    let probabilities: UnsafeMutablePointer<Float>?
}

/// The state shared between the coordinator and the workers during a job, in one place.
///
/// Why sharing it is safe: `order` and `policy` are written by the main thread before a job and only read during
/// it; `outcome` and `skipped` are written by worker 0 only, before a barrier that every reader passes first; `batch` (the targets) is written by each worker on its own rows
/// only, and read across rows only by worker 0 after a barrier; `workspaces[w]` is written once by worker w and only ever used by worker w;
/// the progress counters are atomics, written by worker 0 between barriers and read by the main thread.
final class SharedState: @unchecked Sendable {
    let batch: BatchTargets
    /// Sample indices of an inference batch (each worker writes its own rows).
    let indices: UnsafeMutablePointer<Int32>
    var order: UnsafePointer<Int32>?
    /// The step whose loss some worker found not finite (each worker stores the same value, before a barrier).
    let nonFiniteStep = ManagedAtomic<Int>(0)
    /// How a job ended, written by worker 0 before a barrier (kind 0: ran to the end, 1: diverged, 2: signal).
    var outcome = StepOutcome(kind: 0, step: 0, signal: 0)
    /// Batches skipped for a non-finite loss (on_nan: skip_batch).
    var skipped = 0
    var policy = StepPolicy(skipOnNaN: false, maxSkipped: 10, watchSignals: false)
    let workspaces: PerWorker<GemmWorkspace?>
    /// Per chunk of the parameters (StepPlan.chunks): the penalty, and the gradient's Σv²; each written by the
    /// chunk's owner, read after a barrier (by worker 0, and by every worker).
    let penalties: UnsafeMutablePointer<Double>
    let squares: UnsafeMutablePointer<Double>
    /// The same sums over every rank (with one rank, the same buffers), written by worker 0 in an exchange.
    let allPenalties: UnsafeMutablePointer<Double>
    let allSquares: UnsafeMutablePointer<Double>
    /// The signal any rank saw (the largest), agreed in the activations exchange; 0: none.
    var agreedSignal = 0
    private let stepsDone = ManagedAtomic<Int>(0)
    private let lossBits = ManagedAtomic<UInt64>(0)
    private let correctBits = ManagedAtomic<UInt64>(0)
    private let seenCount = ManagedAtomic<Int>(0)
    private var lossSum = 0.0, correctSum = 0.0, seen = 0  // worker 0's running sums

    init(workers: Int, batchSize: Int, targetWidth: Int, chunks: Int, distributed: Bool) {
        batch = BatchTargets(capacity: batchSize, width: targetWidth)
        indices = .allocate(capacity: batchSize)
        workspaces = PerWorker(count: workers, initial: nil)
        func zeros() -> UnsafeMutablePointer<Double> {
            let p = UnsafeMutablePointer<Double>.allocate(capacity: max(1, chunks))
            p.initialize(repeating: 0, count: max(1, chunks))
            return p
        }
        penalties = zeros()
        squares = zeros()
        allPenalties = distributed ? zeros() : penalties
        allSquares = distributed ? zeros() : squares
    }
    deinit {
        indices.deallocate()
        if allPenalties != penalties { allPenalties.deallocate() }
        if allSquares != squares { allSquares.deallocate() }
        penalties.deallocate()
        squares.deallocate()
    }

    /// Worker 0, between barriers: what the ranks exchange at this point of step `step` (a batch of `n` rows).
    func exchange(
        _ what: StepPlan.Exchange, _ exchanger: Exchanger, batch n: Int, step: Int,
        parameters: UnsafeMutablePointer<Float>
    ) {
        switch what {
        case .start(let activation):
            exchanger.start(activation, batch: n)
        case .activations:
            exchanger.activations(batch: n)
            // Without regularizers the penalties stay zero on every rank: nothing to add.
            if exchanger.sumsPenalties { exchanger.sumChunks(penalties, into: allPenalties) }
            agreedSignal = exchanger.communicator.maximum(Int(loom_pending_signal()))
            // A non-finite loss on any rank's rows stops (or skips) the step on every rank alike.
            for i in 0..<n where !exchanger.buffers.rowLoss[i].isFinite {
                nonFiniteStep.store(step, ordering: .relaxed)
                break
            }
        case .norms:
            exchanger.sumChunks(squares, into: allSquares)
        case .parameters:
            exchanger.parameters(parameters)
        }
    }

    func restoreProgress(steps: Int, lossSum: Double, correctSum: Double, seen: Int) {
        outcome = StepOutcome(kind: 0, step: 0, signal: 0)
        self.lossSum = lossSum
        self.correctSum = correctSum
        self.seen = seen
        stepsDone.store(steps, ordering: .relaxed)
        lossBits.store(lossSum.bitPattern, ordering: .relaxed)
        correctBits.store(correctSum.bitPattern, ordering: .relaxed)
        seenCount.store(seen, ordering: .relaxed)
    }

    func resetProgress() {
        outcome = StepOutcome(kind: 0, step: 0, signal: 0)
        lossSum = 0
        correctSum = 0
        seen = 0
        stepsDone.store(0, ordering: .relaxed)
        lossBits.store(0, ordering: .relaxed)
        correctBits.store(0, ordering: .relaxed)
        seenCount.store(0, ordering: .relaxed)
    }

    /// Worker 0, after the step's first barrier: adds the batch's per-row losses in row order, each with the
    /// regularizers' penalty (summed over the plan's chunks in order), as Keras reports a regularized loss.
    func record(_ buffers: ActivationBuffers, rows n: Int, plan: StepPlan) {
        var penalty = 0.0
        for (c, chunk) in plan.chunks.enumerated() where chunk.regularizer != nil { penalty += allPenalties[c] }
        for i in 0..<n {
            lossSum += Double(buffers.rowLoss[i]) + penalty
            correctSum += Double(buffers.rowMetric[i])
        }
        seen += n
        lossBits.store(lossSum.bitPattern, ordering: .relaxed)
        correctBits.store(correctSum.bitPattern, ordering: .relaxed)
        seenCount.store(seen, ordering: .relaxed)
        stepsDone.wrappingIncrement(ordering: .releasing)
    }

    /// (steps done, loss sum, correct count, samples seen) of the running epoch.
    func progress() -> (Int, Double, Double, Int) {
        let done = stepsDone.load(ordering: .acquiring)
        return (
            done, Double(bitPattern: lossBits.load(ordering: .relaxed)),
            Double(bitPattern: correctBits.load(ordering: .relaxed)), seenCount.load(ordering: .relaxed)
        )
    }
}

/// What crossed between ranks during training, per step: this rank's share.
public struct Communication: Sendable, Equatable {
    /// Bytes this rank sent.
    public var bytesPerStep: Double
    /// Of those, the bytes started early (`StepPlan.Exchange.start`), travelling while later stages computed.
    public var startedBytesPerStep: Double
    /// Seconds worker 0 spent starting, finishing or waiting for exchanges: the communication the step was
    /// not hiding behind computation.
    public var secondsPerStep: Double
}
