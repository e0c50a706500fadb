// Topology: the machine's NUMA nodes, their CPUs and memory, the physical core of each CPU (to tell SMT
// siblings apart), intersected with the CPUs this process may use — and the placement of N workers on it.
// Read from libnuma and sysfs on a real machine; built from a sysfs-like folder or a literal in tests, so
// 2- and 4-node machines can be tested on a 1-node one.
import CSupport
import Foundation

/// One NUMA node.
public struct NUMANode: Sendable, Equatable {
    /// The node's number.
    public var id: Int
    /// All CPUs of the node (usable or not), ascending.
    public var cpus: [Int]
    /// Total memory in bytes, when known.
    public var memoryBytes: Int64?
    /// A node of `cpus`, with its memory when known.
    public init(id: Int, cpus: [Int], memoryBytes: Int64? = nil) {
        self.id = id
        self.cpus = cpus.sorted()
        self.memoryBytes = memoryBytes
    }
}

/// Where one worker runs.
public struct WorkerPlacement: Sendable, Equatable {
    /// The worker's index.
    public var worker: Int
    /// The CPU it is pinned to.
    public var cpu: Int
    /// The NUMA node of that CPU.
    public var node: Int
    /// True when this CPU already carries another worker.
    public var shared: Bool
}

/// NUMA nodes, physical cores and usable CPUs.
public struct Topology: Sendable, Equatable {
    /// The NUMA nodes, each with its CPUs.
    public var nodes: [NUMANode]
    /// The physical core of each CPU (SMT siblings share one); CPUs missing here count as their own core.
    public var coreOf: [Int: Int]
    /// The CPUs this process may run on (its affinity mask), ascending.
    public var usableCPUs: [Int]
    /// Where the description came from ("libnuma", "sysfs folder …", "literal").
    public var source: String

    /// A topology of `nodes`; `coreOf` maps a CPU to its physical core, `usableCPUs` limits the CPUs used.
    public init(nodes: [NUMANode], coreOf: [Int: Int] = [:], usableCPUs: [Int]? = nil, source: String = "literal") {
        self.nodes = nodes.sorted { $0.id < $1.id }
        self.coreOf = coreOf
        self.usableCPUs = (usableCPUs ?? nodes.flatMap(\.cpus)).sorted()
        self.source = source
    }

    /// The usable CPUs of a node, one per physical core first (lowest CPU of each core, cores in order), then
    /// the remaining SMT siblings.
    public func orderedCPUs(of node: NUMANode) -> [Int] {
        let usable = Set(usableCPUs)
        let cpus = node.cpus.filter(usable.contains)
        var seenCores = Set<Int>()
        var primary: [Int] = []
        var siblings: [Int] = []
        for cpu in cpus {
            let core = coreOf[cpu] ?? (-1 - cpu)
            if seenCores.insert(core).inserted { primary.append(cpu) } else { siblings.append(cpu) }
        }
        return primary + siblings
    }

    /// Places `workers` workers: nodes get workers in proportion to their usable CPUs (largest remainder),
    /// each node fills its physical cores before any SMT sibling, and workers are numbered node by node so
    /// that neighbouring row shards share a node. Past the usable CPUs, placement wraps around (shared).
    public func placement(workers: Int) -> [WorkerPlacement] {
        let usableNodes = nodes.map { ($0, orderedCPUs(of: $0)) }.filter { !$0.1.isEmpty }
        guard workers > 0, !usableNodes.isEmpty else { return [] }
        let total = usableNodes.reduce(0) { $0 + $1.1.count }
        // Largest-remainder apportionment of workers to nodes by usable CPU count.
        var counts = usableNodes.map { workers * $0.1.count / total }
        var remainders = usableNodes.enumerated().map { (i, n) in (i, workers * n.1.count % total) }
        remainders.sort { $0.1 != $1.1 ? $0.1 > $1.1 : $0.0 < $1.0 }
        var left = workers - counts.reduce(0, +)
        for (i, _) in remainders where left > 0 {
            counts[i] += 1
            left -= 1
        }
        var result: [WorkerPlacement] = []
        for (n, (node, cpus)) in usableNodes.enumerated() {
            for k in 0..<counts[n] {
                result.append(
                    WorkerPlacement(
                        worker: result.count, cpu: cpus[k % cpus.count], node: node.id,
                        shared: k >= cpus.count))
            }
        }
        return result
    }

    /// The machine this process runs on: libnuma's nodes (or one node when libnuma reports none), sysfs's
    /// physical cores, and sched_getaffinity's usable CPUs.
    public static func detect() -> Topology {
        var buffer = [Int32](repeating: 0, count: 4096)
        let n = Int(loom_allowed_cpus(&buffer, Int32(buffer.count)))
        let usable = n > 0 ? buffer[0..<n].map(Int.init) : Array(0..<ProcessInfo.processInfo.activeProcessorCount)
        var nodes: [NUMANode] = []
        var source = "libnuma"
        if loom_numa_available() == 1 {
            let maxNode = Int(loom_numa_max_node())
            if maxNode >= 0 {
                for id in 0...maxNode {
                    let count = Int(loom_numa_node_cpus(Int32(id), &buffer, Int32(buffer.count)))
                    guard count > 0 else { continue }
                    var free: Int64 = 0
                    let memory = loom_numa_node_memory(Int32(id), &free)
                    nodes.append(
                        NUMANode(id: id, cpus: buffer[0..<count].map(Int.init), memoryBytes: memory > 0 ? memory : nil))
                }
            }
        }
        if nodes.isEmpty {
            source = "no NUMA support: one node"
            nodes = [NUMANode(id: 0, cpus: usable)]
        }
        var coreOf: [Int: Int] = [:]
        for cpu in nodes.flatMap(\.cpus) {
            if let core = readCore(root: "/sys/devices/system/cpu", cpu: cpu) { coreOf[cpu] = core }
        }
        return Topology(nodes: nodes, coreOf: coreOf, usableCPUs: usable, source: source)
    }

    /// The size in bytes of the cache of `level` (2: a core's own, 3: the one its cores share) that CPU 0 sees,
    /// as `cache/indexN/{level,size}` under `root` say it (the cores of one machine share a design); nil where
    /// sysfs does not say.
    public static func cacheBytes(level: Int, root: String = "/sys/devices/system/cpu/cpu0/cache") -> Int? {
        for index in 0..<8 {
            let dir = "\(root)/index\(index)"
            func read(_ name: String) -> String? {
                (try? String(contentsOfFile: "\(dir)/\(name)", encoding: .utf8))?
                    .trimmingCharacters(in: .whitespacesAndNewlines)
            }
            guard read("level") == "\(level)", let size = read("size") else { continue }
            let units: [Character: Int] = ["K": 1 << 10, "M": 1 << 20]
            if let unit = size.last.flatMap({ units[$0] }), let value = Int(size.dropLast()) { return value * unit }
            if let value = Int(size) { return value }
        }
        return nil
    }

    /// A topology described by a sysfs-like folder: `node/nodeN/cpulist` (e.g. "0-3,8-11"),
    /// optionally `node/nodeN/meminfo` ("Node N MemTotal: K kB"), and optionally
    /// `cpu/cpuN/topology/{physical_package_id,core_id}`. `usable` defaults to every CPU listed.
    public static func fromSysfs(root: String, usable: [Int]? = nil) throws(TopologyError) -> Topology {
        let nodeDir = (root as NSString).appendingPathComponent("node")
        guard let entries = try? FileManager.default.contentsOfDirectory(atPath: nodeDir) else {
            throw .unreadable("\(nodeDir): no such folder (expected node/nodeN/cpulist files)")
        }
        var nodes: [NUMANode] = []
        for entry in entries.sorted() where entry.hasPrefix("node") {
            guard let id = Int(entry.dropFirst(4)) else { continue }
            let dir = (nodeDir as NSString).appendingPathComponent(entry)
            guard let list = try? String(contentsOfFile: dir + "/cpulist", encoding: .utf8) else { continue }
            let cpus = try parseCPUList(list.trimmingCharacters(in: .whitespacesAndNewlines))
            var memory: Int64?
            if let info = try? String(contentsOfFile: dir + "/meminfo", encoding: .utf8),
                let line = info.split(separator: "\n").first(where: { $0.contains("MemTotal:") }),
                let kb = line.split(separator: " ").compactMap({ Int64($0) }).last
            {
                memory = kb * 1024
            }
            nodes.append(NUMANode(id: id, cpus: cpus, memoryBytes: memory))
        }
        guard !nodes.isEmpty else { throw .unreadable("\(nodeDir): no nodeN/cpulist found") }
        var coreOf: [Int: Int] = [:]
        let cpuRoot = (root as NSString).appendingPathComponent("cpu")
        for cpu in nodes.flatMap(\.cpus) {
            if let core = readCore(root: cpuRoot, cpu: cpu) { coreOf[cpu] = core }
        }
        return Topology(nodes: nodes, coreOf: coreOf, usableCPUs: usable, source: "sysfs folder \(root)")
    }

    /// A unique physical-core key for a CPU: package × 65536 + core id.
    static func readCore(root: String, cpu: Int) -> Int? {
        let dir = "\(root)/cpu\(cpu)/topology"
        guard let core = try? String(contentsOfFile: dir + "/core_id", encoding: .utf8),
            let c = Int(core.trimmingCharacters(in: .whitespacesAndNewlines))
        else { return nil }
        let package =
            (try? String(contentsOfFile: dir + "/physical_package_id", encoding: .utf8))
            .flatMap { Int($0.trimmingCharacters(in: .whitespacesAndNewlines)) } ?? 0
        return package * 65536 + c
    }

    /// "0-3,8,10-11" → [0, 1, 2, 3, 8, 10, 11].
    public static func parseCPUList(_ s: String) throws(TopologyError) -> [Int] {
        if s.isEmpty { return [] }
        var cpus: [Int] = []
        for part in s.split(separator: ",") {
            let bounds = part.split(separator: "-").map { Int($0.trimmingCharacters(in: .whitespaces)) }
            if bounds.count == 1, let a = bounds[0] {
                cpus.append(a)
            } else if bounds.count == 2, let a = bounds[0], let b = bounds[1], a <= b {
                cpus.append(contentsOf: a...b)
            } else {
                throw .unreadable("bad CPU list '\(s)'")
            }
        }
        return cpus
    }

    /// A human-readable description: nodes with CPUs and memory, then a placement.
    public func describe(workers: Int) -> String {
        var lines = [
            "Topology (\(source)): \(nodes.count) NUMA node\(nodes.count == 1 ? "" : "s"), \(usableCPUs.count) usable CPU\(usableCPUs.count == 1 ? "" : "s")"
        ]
        for node in nodes {
            let usable = orderedCPUs(of: node)
            let cores = Set(usable.map { coreOf[$0] ?? (-1 - $0) }).count
            let memory = node.memoryBytes.map { String(format: "%.1f GiB", Double($0) / 1_073_741_824) } ?? "unknown"
            lines.append(
                "  node \(node.id): CPUs \(compactList(node.cpus)) (usable \(compactList(usable.sorted())); \(cores) physical core\(cores == 1 ? "" : "s")), memory \(memory)"
            )
        }
        lines.append("Placement for \(workers) worker\(workers == 1 ? "" : "s"):")
        for p in placement(workers: workers) {
            lines.append(
                "  worker \(p.worker) → CPU \(p.cpu) → node \(p.node)\(p.shared ? " (shared: more workers than usable CPUs)" : "")"
            )
        }
        return lines.joined(separator: "\n")
    }
}

/// A topology description that could not be read.
public enum TopologyError: Error, CustomStringConvertible, Equatable {
    /// The topology files could not be read.
    case unreadable(String)
    public var description: String {
        switch self {
        case .unreadable(let s): s
        }
    }
}

/// [0, 1, 2, 3, 8] → "0-3,8".
public func compactList(_ xs: [Int]) -> String {
    var parts: [String] = []
    var i = 0
    while i < xs.count {
        var j = i
        while j + 1 < xs.count && xs[j + 1] == xs[j] + 1 { j += 1 }
        parts.append(i == j ? "\(xs[i])" : "\(xs[i])-\(xs[j])")
        i = j + 1
    }
    return parts.isEmpty ? "none" : parts.joined(separator: ",")
}
