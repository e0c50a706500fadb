// RankStart: before the first step, every rank of a job says whether it could start and what it is about to
// train (fingerprints of its resolved config, its data and its binary); all ranks then see the same table and
// reach the same verdict, so a rank that cannot start, or would train something else, ends the job at once
// with one line, instead of hanging the others at their first collective.
import Foundation
import LoomConfig
import LoomData
import LoomKernels
import LoomNN

/// What one rank brings to the start of a job.
public struct RankStart: Sendable, Equatable {
    /// Why this rank cannot start (nil: it can).
    public var error: String?
    /// SHA-256 of the resolved config, of the data (sizes, labels and a sample of rows), and of the binary
    /// (version and size).
    public var config: [UInt8]
    /// SHA-256 of the data's samples and labels.
    public var data: [UInt8]
    /// SHA-256 of the running binary.
    public var binary: [UInt8]
    /// The SIMD kernels this rank chose (`KernelISA`): ranks must agree, since AVX2 and AVX-512 kernels round
    /// differently and lay packed weights out differently.
    public var kernels: String
    /// The worker threads this rank runs: ranks must agree, since the step's plan is cut for threads × ranks.
    public var threads: Int

    /// A start record that carries an error instead of hashes (a rank that could not load its data).
    public init(error: String) {
        self.error = error
        (config, data, binary, kernels, threads) = ([], [], [], "", 0)
    }

    /// The start record of `config` and `data` on this rank, which runs `threads` worker threads.
    public init(config: RunConfig, data: DataSplits, threads: Int) {
        error = nil
        self.threads = threads
        self.config = SHA256.hash(Array(config.yaml.utf8))
        self.data = RankStart.fingerprint(data)
        let exe = (try? FileManager.default.attributesOfItem(atPath: "/proc/self/exe")[.size] as? Int) ?? 0
        binary = SHA256.hash(Array("\(Version.loom) \(exe)".utf8))
        kernels = KernelISA.active.rawValue
    }

    static func fingerprint(_ data: DataSplits) -> [UInt8] {
        var bytes: [UInt8] = []
        for set in [data.train, data.test] {
            bytes += Array("\(set.count) \(set.features) \(set.classes);".utf8)
            for i in 0..<set.count { withUnsafeBytes(of: set.label(i)) { bytes += $0 } }
            // 64 rows spread over the set, as floats.
            let picks = min(64, set.count)
            var rows = [Float](repeating: 0, count: max(1, picks * set.features))
            var labels = [Int32](repeating: 0, count: max(1, picks))
            var indices = (0..<picks).map { Int32($0 * set.count / max(1, picks)) }
            rows.withUnsafeMutableBufferPointer { r in
                labels.withUnsafeMutableBufferPointer { l in
                    indices.withUnsafeMutableBufferPointer { i in
                        set.gather(
                            i.baseAddress!, count: picks, into: r.baseAddress!, ld: set.features, labels: l.baseAddress!
                        )
                    }
                }
            }
            rows.withUnsafeBytes { bytes += $0 }
            set.targetArray.withUnsafeBytes { bytes += $0 }
            set.weightArray?.withUnsafeBytes { bytes += $0 }
        }
        return SHA256.hash(bytes)
    }
}

extension SHA256 {
    static func hash(_ bytes: [UInt8]) -> [UInt8] { bytes.withUnsafeBytes { hash($0) } }
}

extension Communicator {
    /// Shares every rank's start; throws on every rank alike when one could not start or differs from rank 0
    /// (naming the rank, its host and what differs).
    public func agree(_ start: RankStart) throws(LoomError) {
        guard isDistributed else {
            if let error = start.error { throw .usage(error) }
            return
        }
        let messageBytes = 480
        let hostBytes = 64
        func pad(_ b: [UInt8], _ n: Int) -> [UInt8] {
            Array(b.prefix(n)) + [UInt8](repeating: 0, count: max(0, n - b.count))
        }
        let record =
            [start.error == nil ? 1 : 0] + pad(start.config, 32) + pad(start.data, 32) + pad(start.binary, 32)
            + pad(Array(start.kernels.utf8), 16) + pad(Array((start.error ?? "").utf8), messageBytes)
            + pad(Array(host.utf8), hostBytes) + withUnsafeBytes(of: Int32(start.threads).littleEndian, Array.init)
        let all = allgather(record)
        func text(_ b: ArraySlice<UInt8>) -> String { String(decoding: b.prefix { $0 != 0 }, as: UTF8.self) }
        let hostRange = (113 + messageBytes)..<(113 + messageBytes + hostBytes)
        let threadBytes = hostRange.upperBound..<hostRange.upperBound + 4
        let failures = all.indices.filter { all[$0][0] == 0 }
        if let r = failures.first {
            let host = text(all[r][hostRange])
            let message = text(all[r][113..<(113 + messageBytes)])
            let more =
                failures.count > 1 ? " (and \(failures.count - 1) more rank\(failures.count > 2 ? "s" : ""))" : ""
            throw .usage("rank \(r) on \(host)\(more): \(message)")
        }
        func threads(_ r: Int) -> Int32 {
            all[r][threadBytes].withUnsafeBytes { Int32(littleEndian: $0.loadUnaligned(as: Int32.self)) }
        }
        for r in 1..<all.count {
            let host = text(all[r][hostRange])
            for (what, range, fix) in [
                ("config", 1..<33, "give every rank the same config file and --set options"),
                ("data", 33..<65, "give every rank the same data files"),
                ("binary", 65..<97, "run the same loom build on every host"),
                (
                    "choice of SIMD kernels (\(text(all[r][97..<113])) vs \(text(all[0][97..<113])))", 97..<113,
                    "run every rank with the same kernels, e.g. mpirun -x LOOM_KERNELS=avx2"
                ),
                (
                    "thread count (\(threads(r)) vs \(threads(0)))", threadBytes,
                    "give every rank the same --workers (or as many CPUs: mpirun --map-by with the same count per rank)"
                ),
            ] where all[r][range] != all[0][range] {
                throw .usage("rank \(r) on \(host) has a different \(what) from rank 0's: \(fix)")
            }
        }
    }
}

/// Where each rank of a job runs: its host and the CPUs its workers use.
public struct RankPlacement: Sendable, Equatable {
    /// The rank.
    public var rank: Int
    /// Its host.
    public var host: String
    /// The CPUs the launcher gave it.
    public var cpus: [Int]
}

extension Communicator {
    /// Ranks on one host that were given overlapping CPUs (`mpirun --bind-to none`, or a launcher that binds
    /// nothing) split those CPUs between them, in rank order, so no two ranks pin workers to the same CPU (more
    /// ranks than CPUs share them, one each); ranks bound to their own CPUs keep them. Then every rank keeps as
    /// many CPUs as the rank with fewest: the step's plan needs the same thread count on every rank, and the
    /// default thread count is one per CPU. Returns this rank's topology and every rank's placement.
    public func shareCPUs(_ topology: Topology) -> (Topology, [RankPlacement]) {
        let maskBytes = 512  // CPUs 0..<4096
        var mask = [UInt8](repeating: 0, count: maskBytes)
        for cpu in topology.usableCPUs where cpu < maskBytes * 8 { mask[cpu / 8] |= 1 << UInt8(cpu % 8) }
        let hostName = Array(self.host.utf8.prefix(63))
        let all = allgather(hostName + [UInt8](repeating: 0, count: 64 - hostName.count) + mask)
        func hostOf(_ r: Int) -> String { String(decoding: all[r][0..<64].prefix { $0 != 0 }, as: UTF8.self) }
        func cpus(_ r: Int) -> [Int] { (0..<maskBytes * 8).filter { all[r][64 + $0 / 8] & (1 << UInt8($0 % 8)) != 0 } }
        let placements = Communicator.share(
            (0..<size).map { RankPlacement(rank: $0, host: hostOf($0), cpus: cpus($0)) })
        var mine = topology
        mine.usableCPUs = placements[rank].cpus.isEmpty ? topology.usableCPUs : placements[rank].cpus
        return (mine, placements)
    }

    /// `shareCPUs`' rule on every rank's placement as the launcher gave it (the same answer on every rank).
    static func share(_ given: [RankPlacement]) -> [RankPlacement] {
        var placements = given
        let size = placements.count
        // Groups of ranks on one host whose CPU sets overlap (transitively) share their union.
        var group = Array(0..<size)
        func root(_ r: Int) -> Int { group[r] == r ? r : root(group[r]) }
        for a in 0..<size {
            for b in 0..<a where placements[a].host == placements[b].host {
                if !Set(placements[a].cpus).isDisjoint(with: placements[b].cpus) { group[root(a)] = root(b) }
            }
        }
        for r0 in Set((0..<size).map(root)) {
            let members = (0..<size).filter { root($0) == r0 }
            guard members.count > 1 else { continue }
            let union = Array(Set(members.flatMap { placements[$0].cpus })).sorted()
            for (i, r) in members.enumerated() {
                placements[r].cpus =
                    union.count >= members.count
                    ? Array(union[shard(union.count, part: i, of: members.count)]) : [union[i % union.count]]
            }
        }
        let fewest = placements.map(\.cpus.count).filter { $0 > 0 }.min() ?? 0
        for r in placements.indices where placements[r].cpus.count > fewest {
            placements[r].cpus = Array(placements[r].cpus.prefix(fewest))
        }
        return placements
    }
}
