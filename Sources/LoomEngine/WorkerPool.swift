// The worker pool: N long-lived threads, created once per run, each pinned to its CPU, that run jobs (an epoch
// of steps, an evaluation pass) handed over by the main thread, synchronizing within a job on a spin barrier.
// The main thread is never pinned (threads it creates later would inherit its one-CPU mask) and sleeps while
// a job runs, waking only to print progress.
import Atomics
import CSupport
import Dispatch
import Foundation

/// A reusable barrier for the workers of one pool: sense-reversing, spinning on a generation counter with the
/// `pause` hint, then yielding the CPU (so more workers than cores degrade gracefully instead of collapsing).
/// The counters sit in their own cache lines.
public final class SpinBarrier: @unchecked Sendable {
    // Sendable: all mutable state is atomic.
    private let parties: Int
    private let memory: UnsafeMutableRawPointer
    private let arrived: UnsafeAtomic<Int>
    private let generation: UnsafeAtomic<Int>
    /// Spins before the first yield. About 10 µs of `pause`s: longer than any imbalance within a step here.
    private let spinLimit: Int

    public init(parties: Int, spinLimit: Int = 4000) {
        precondition(parties >= 1)
        self.parties = parties
        self.spinLimit = spinLimit
        memory = .allocate(byteCount: 2 * 64, alignment: 64)
        arrived = UnsafeAtomic(at: memory.bindMemory(to: Int.AtomicRepresentation.self, capacity: 1))
        generation = UnsafeAtomic(at: (memory + 64).bindMemory(to: Int.AtomicRepresentation.self, capacity: 1))
        arrived.store(0, ordering: .relaxed)
        generation.store(0, ordering: .relaxed)
    }

    deinit { memory.deallocate() }

    /// Blocks until all `parties` threads have called `wait()`; everything written before it by any of them is
    /// visible to all after it.
    public func wait() {
        if parties == 1 { return }
        let gen = generation.load(ordering: .acquiring)
        if arrived.wrappingIncrementThenLoad(ordering: .acquiringAndReleasing) == parties {
            arrived.store(0, ordering: .relaxed)
            generation.wrappingIncrement(ordering: .releasing)
            return
        }
        var spins = 0
        while generation.load(ordering: .acquiring) == gen {
            if spins < spinLimit {
                loom_cpu_relax()
                spins += 1
            } else {
                loom_yield()
            }
        }
    }
}

/// A job for every worker: called once on each worker thread with the worker's index.
public typealias WorkerJob = @Sendable (_ worker: Int) -> Void

/// N pinned threads that run jobs.
public final class WorkerPool: @unchecked Sendable {
    // Sendable: `job` and `stopping` are written by the main thread only while every worker waits on its
    // semaphore, and read by the workers only after it is signalled (the semaphores order the accesses).
    public let placements: [WorkerPlacement]
    public let barrier: SpinBarrier
    private var job: WorkerJob?
    private var stopping = false
    private let start: [DispatchSemaphore]
    private let done = DispatchSemaphore(value: 0)
    private let exited = DispatchSemaphore(value: 0)
    private let cpuSeen: PerWorker<Int>
    private let pinErrors: PerWorker<Int32>

    public var count: Int { placements.count }

    /// Starts one thread per placement; with `pin`, each pins itself to its CPU before anything else.
    public init(placements: [WorkerPlacement], pin: Bool = true) {
        precondition(!placements.isEmpty)
        self.placements = placements
        barrier = SpinBarrier(parties: placements.count)
        start = placements.map { _ in DispatchSemaphore(value: 0) }
        cpuSeen = PerWorker(count: placements.count, initial: -1)
        pinErrors = PerWorker(count: placements.count, initial: 0)
        for p in placements {
            let thread = Thread { [self, pinErrors] in
                if pin { pinErrors[p.worker] = loom_pin_current_thread(Int32(p.cpu)) }
                run(p.worker)
            }
            thread.name = "loom-worker-\(p.worker)"
            thread.stackSize = 1 << 20
            thread.start()
        }
        // Record where each worker runs (sched_getcpu), after pinning.
        self.run { [cpuSeen] w in cpuSeen[w] = Int(loom_current_cpu()) }
    }

    private func run(_ worker: Int) {
        while true {
            start[worker].wait()
            if stopping {
                exited.signal()
                return
            }
            job!(worker)
            done.signal()
        }
    }

    /// Runs `job` on every worker and returns when all have finished. `tick`, if given, is called on the
    /// calling thread about every `interval` seconds while the job runs (progress printing).
    public func run(_ job: @escaping WorkerJob, interval: Double = 0.1, tick: () -> Void = {}) {
        self.job = job
        for s in start { s.signal() }
        var finished = 0
        while finished < count {
            if done.wait(timeout: .now() + interval) == .success { finished += 1 } else { tick() }
        }
        self.job = nil
    }

    /// The CPU each worker reported (sched_getcpu) right after pinning.
    public var observedCPUs: [Int] { cpuSeen.values }
    /// pthread_setaffinity_np's result per worker (0 = pinned).
    public var pinResults: [Int32] { pinErrors.values }

    /// Ends the threads.
    public func shutdown() {
        guard !stopping else { return }
        stopping = true
        for s in start { s.signal() }
        for _ in start { exited.wait() }
    }

    deinit { shutdown() }
}
