// Communicator: the processes (ranks) of one training job, and the few collectives the step needs, over MPI.
//
// One process per machine or NUMA node, threads inside it (the worker pool), MPI between processes. Every MPI
// call comes from one thread at a time — the main thread outside a job, worker 0 inside one, while the main
// thread waits for the job — so MPI is initialized with MPI_THREAD_SERIALIZED. A process not started by an MPI
// launcher, or built without the MPI trait, is a world of one rank and makes no MPI call at all.
import CLoomMPI
import Foundation

/// The ranks of a job: this process's rank, their number, and its host.
public final class Communicator: @unchecked Sendable {
    // Sendable: immutable after init; the collectives are called by one thread at a time (see above).
    /// This process's rank (0 without MPI).
    public let rank: Int
    /// The number of ranks (1 without MPI).
    public let size: Int
    /// This process's host name.
    public let host: String
    /// Whether MPI was initialized (and must be finalized).
    let usesMPI: Bool

    /// A world of one process.
    public static let single = Communicator(rank: 0, size: 1, host: Communicator.localHost, usesMPI: false)

    init(rank: Int, size: Int, host: String, usesMPI: Bool) {
        (self.rank, self.size, self.host, self.usesMPI) = (rank, size, host, usesMPI)
    }

    /// Whether more than one rank trains.
    public var isDistributed: Bool { size > 1 }

    static var localHost: String {
        var name = [CChar](repeating: 0, count: 256)
        gethostname(&name, name.count)
        return String(decoding: name.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }

    /// The rank count an MPI launcher announced in the environment (Open MPI, PMIx, PMI: mpirun, srun), if any.
    public static var launcherSize: Int? {
        let env = ProcessInfo.processInfo.environment
        for key in ["OMPI_COMM_WORLD_SIZE", "PMIX_SIZE", "PMI_SIZE"] {
            if let v = env[key], let n = Int(v) { return n }
        }
        return env["PMIX_RANK"] != nil ? 0 : nil
    }

    /// This process's world: MPI's when an MPI launcher started it, else a single process. A launch of several
    /// ranks by a loom built without MPI is refused (each rank would train alone and overwrite the others).
    public static func world() throws(LoomError) -> Communicator {
        guard let announced = launcherSize else { return .single }
        guard loom_mpi_compiled() == 1 else {
            if announced > 1 {
                throw .usage(
                    "started by an MPI launcher as one of \(announced) ranks, but this loom was built without MPI: build it with `swift build -c release --traits MPI` (needs libopenmpi-dev), or run it without mpirun"
                )
            }
            return .single
        }
        var rank: Int32 = 0
        var size: Int32 = 1
        var error = [CChar](repeating: 0, count: 512)
        if loom_mpi_init(&rank, &size, &error, Int32(error.count)) != 0 {
            let message = String(decoding: error.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
            throw .usage("cannot start MPI: \(message)")
        }
        var name = [CChar](repeating: 0, count: 256)
        loom_mpi_processor_name(&name, Int32(name.count))
        let host = String(decoding: name.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
        return Communicator(rank: Int(rank), size: Int(size), host: host, usesMPI: true)
    }

    /// Ends MPI (every rank, at the end of a successful run).
    public func finalize() { if usesMPI { loom_mpi_finalize() } }

    /// Ends every rank of the job with `code`, after this one has said why.
    public func abort(code: Int32) -> Never {
        if usesMPI { loom_mpi_abort(code) }
        exit(code)
    }

    /// `count` bytes from every rank, in rank order.
    public func allgather(_ bytes: [UInt8]) -> [[UInt8]] {
        guard isDistributed else { return [bytes] }
        var receive = [UInt8](repeating: 0, count: bytes.count * size)
        _ = bytes.withUnsafeBytes { s in
            receive.withUnsafeMutableBytes { r in
                loom_mpi_allgather_bytes(s.baseAddress, Int32(bytes.count), r.baseAddress)
            }
        }
        return (0..<size).map { Array(receive[$0 * bytes.count..<($0 + 1) * bytes.count]) }
    }

    /// The largest of every rank's `value` (a flag: 1 on any rank → 1 everywhere).
    public func maximum(_ value: Int) -> Int {
        isDistributed ? Int(loom_mpi_allreduce_max_int(Int32(value))) : value
    }

    /// In place: rank r's block, `counts[r]` floats at `displacements[r]` of `buffer`, reaches every rank.
    @inline(__always)
    func allgather(
        _ buffer: UnsafeMutablePointer<Float>, counts: UnsafePointer<Int32>, displacements: UnsafePointer<Int32>
    ) {
        if isDistributed { loom_mpi_allgatherv_floats(buffer, counts, displacements) }
    }

    /// Starts what `allgather(_:counts:displacements:)` does, without waiting: the blocks must not be touched
    /// until `finishStarted`. Every rank starts the same gathers in the same order.
    @inline(__always)
    func startAllgather(
        _ buffer: UnsafeMutablePointer<Float>, counts: UnsafePointer<Int32>, displacements: UnsafePointer<Int32>
    ) {
        if isDistributed { loom_mpi_start_allgatherv(buffer, counts, displacements) }
    }

    /// Waits for every gather started since the last call.
    @inline(__always)
    func finishStarted() { if isDistributed { loom_mpi_finish_started() } }

    /// An MPI datatype for the floats at `ranges` of a buffer (in floats), made once per run; nil with one rank
    /// or when MPI refuses it.
    func floatBlocks(_ ranges: [Range<Int>]) -> Int32? {
        guard isDistributed else { return nil }
        let lengths = ranges.map { Int32($0.count) }
        let displacements = ranges.map { Int32($0.lowerBound) }
        let handle = loom_mpi_float_blocks(Int32(ranges.count), lengths, displacements)
        return handle >= 0 ? handle : nil
    }

    /// Frees a datatype of `floatBlocks`.
    func freeBlocks(_ handle: Int32) { loom_mpi_free_blocks(handle) }

    /// In place: rank r's values, where its datatype `handles[r]` places them in `buffer`, reach every rank.
    @inline(__always)
    func exchangeBlocks(_ buffer: UnsafeMutablePointer<Float>, handles: UnsafePointer<Int32>) {
        if isDistributed { loom_mpi_exchange_blocks(buffer, handles) }
    }

    /// receive[i] = Σ over ranks of send[i] (exact where one rank alone holds a non-zero value).
    @inline(__always)
    func sum(_ send: UnsafePointer<Double>, into receive: UnsafeMutablePointer<Double>, count: Int) {
        if isDistributed {
            loom_mpi_allreduce_sum_doubles(send, receive, Int32(count))
        } else if UnsafePointer(receive) != send {
            receive.update(from: send, count: count)
        }
    }
}
