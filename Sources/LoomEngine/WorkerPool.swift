// The worker pool: N long-lived threads, created once per run, each pinned to its CPU, that run jobs (an epoch
// of steps, an evaluation pass) handed over by the main thread, synchronizing within a job on a spin barrier.
// The main thread is never pinned (threads it creates later would inherit its one-CPU mask) and sleeps while
// a job runs, waking only to print progress.
import Atomics
import CSupport
import Dispatch
import Foundation

/// A reusable barrier for the workers of one pool: a dissemination barrier (Hensgen, Finkel and Manber; as in
/// Mellor-Crummey and Scott '91). In round r worker i signals worker (i + 2^r) mod W and waits for worker
/// (i − 2^r) mod W's signal, so after ⌈log₂ W⌉ rounds every worker has heard, directly or through others, from
/// all: W workers pay ⌈log₂ W⌉ cache-line hand-offs each, in parallel, instead of W arrivals serialized on one
/// counter. Each flag sits in its own cache line; two sets of flags alternate (parity) and the value that means
/// "arrived" flips every second episode (sense), so no flag is ever reset. A waiter spins with the `pause` hint,
/// then yields the CPU (more workers than cores degrade gracefully instead of collapsing). With `groupSize` G the
/// workers meet in groups of G consecutive ones (w / G alike), each group a dissemination barrier of its own.
public final class SpinBarrier: @unchecked Sendable {
    // Sendable: the flags are atomics; each worker's parity and sense are touched by that worker only.
    /// The threads that meet at the barrier.
    public let parties: Int
    /// The threads that meet at one episode: all parties, or one group of them.
    public let groupSize: Int
    /// ⌈log₂ groupSize⌉.
    public let rounds: Int
    private let flags: UnsafeMutableRawPointer  // [2 parities][rounds][parties], a cache line each
    private let state: UnsafeMutableRawPointer  // [parties] × (parity, sense), a cache line each
    /// Spins before the first yield. About 10 µs of `pause`s: longer than any imbalance within a step here.
    private let spinLimit: Int

    /// A barrier for `parties` threads (in groups of `groupSize`, all of them by default) that spins `spinLimit`
    /// times before it sleeps.
    public init(parties: Int, groupSize: Int? = nil, spinLimit: Int = 4000) {
        let groupSize = groupSize ?? parties
        precondition(parties >= 1 && groupSize >= 1 && parties % groupSize == 0)
        self.parties = parties
        self.groupSize = groupSize
        self.spinLimit = spinLimit
        var r = 0
        while 1 << r < groupSize { r += 1 }
        rounds = r
        let lines = max(1, 2 * r * parties)
        flags = .allocate(byteCount: lines * 64, alignment: 64)
        flags.initializeMemory(as: UInt8.self, repeating: 0, count: lines * 64)
        state = .allocate(byteCount: parties * 64, alignment: 64)
        for w in 0..<parties {
            let s = (state + w * 64).bindMemory(to: Int.self, capacity: 2)
            s[0] = 0  // parity
            s[1] = 1  // sense: the flag value that means "arrived" in this episode
        }
    }

    deinit {
        flags.deallocate()
        state.deallocate()
    }

    @inline(__always) private func flag(_ parity: Int, _ round: Int, _ worker: Int) -> UnsafeAtomic<Int> {
        let line = (parity * rounds + round) * parties + worker
        return UnsafeAtomic(at: (flags + line * 64).assumingMemoryBound(to: Int.AtomicRepresentation.self))
    }

    /// Blocks worker `worker` until all workers of its group (all `parties`, by default) have called `wait`;
    /// everything written before it by any of them is visible to all of them after it.
    public func wait(_ worker: Int) {
        if groupSize == 1 { return }
        let s = (state + worker * 64).assumingMemoryBound(to: Int.self)
        let (parity, sense) = (s[0], s[1])
        let first = worker / groupSize * groupSize
        for round in 0..<rounds {
            let partner = first + (worker - first + (1 << round)) % groupSize
            flag(parity, round, partner).store(sense, ordering: .releasing)
            let mine = flag(parity, round, worker)
            var spins = 0
            while mine.load(ordering: .acquiring) != sense {
                if spins < spinLimit {
                    loom_cpu_relax()
                    spins += 1
                } else {
                    loom_yield()
                }
            }
        }
        if parity == 1 { s[1] = 1 - sense }
        s[0] = 1 - parity
    }
}

/// A job for every worker: called once on each worker thread with the worker's index.
public typealias WorkerJob = @Sendable (_ worker: Int) -> Void

/// N pinned threads that run jobs.
public final class WorkerPool: @unchecked Sendable {
    // Sendable: `job` and `stopping` are written by the main thread only while every worker waits on its
    // semaphore, and read by the workers only after it is signalled (the semaphores order the accesses).
    /// Where each worker is pinned.
    public let placements: [WorkerPlacement]
    /// The barrier the workers share.
    public let barrier: SpinBarrier
    private var job: WorkerJob?
    private var stopping = false
    private let start: [DispatchSemaphore]
    private let done = DispatchSemaphore(value: 0)
    private let exited = DispatchSemaphore(value: 0)
    private let cpuSeen: PerWorker<Int>
    private let pinErrors: PerWorker<Int32>

    /// Worker threads.
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
