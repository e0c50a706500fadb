import Foundation
import LoomTestSupport
import Testing

@testable import LoomEngine

/// Writes a sysfs-like folder: node/nodeN/cpulist, node/nodeN/meminfo, cpu/cpuN/topology/{core_id,physical_package_id}.
func sysfs(nodes: [(cpus: String, memoryKB: Int)], cores: [Int: Int] = [:]) -> String {
    let root = temporaryFolder("loom-sysfs")
    let fm = FileManager.default
    for (i, n) in nodes.enumerated() {
        let dir = "\(root)/node/node\(i)"
        try! fm.createDirectory(atPath: dir, withIntermediateDirectories: true)
        _ = fm.createFile(atPath: dir + "/cpulist", contents: Data((n.cpus + "\n").utf8))
        _ = fm.createFile(
            atPath: dir + "/meminfo",
            contents: Data("Node \(i) MemTotal:       \(n.memoryKB) kB\nNode \(i) MemFree: 1 kB\n".utf8))
    }
    for (cpu, core) in cores {
        let dir = "\(root)/cpu/cpu\(cpu)/topology"
        try! fm.createDirectory(atPath: dir, withIntermediateDirectories: true)
        _ = fm.createFile(atPath: dir + "/core_id", contents: Data("\(core)\n".utf8))
        _ = fm.createFile(atPath: dir + "/physical_package_id", contents: Data("0\n".utf8))
    }
    return root
}

@Suite("Topology and placement")
struct TopologyTests {
    @Test("CPU lists")
    func cpuLists() throws {
        #expect(try Topology.parseCPUList("0-3,8,10-11") == [0, 1, 2, 3, 8, 10, 11])
        #expect(try Topology.parseCPUList("") == [])
        #expect(throws: TopologyError.self) { try Topology.parseCPUList("3-1") }
        #expect(compactList([0, 1, 2, 3, 8, 10, 11]) == "0-3,8,10-11")
    }

    @Test("one node: workers fill physical cores before SMT siblings")
    func oneNodeSMT() throws {
        // 4 cores with 2 threads each: CPUs 0-3 are first threads, 4-7 their siblings.
        let t = try Topology.fromSysfs(
            root: sysfs(nodes: [("0-7", 8_000_000)], cores: [0: 0, 1: 1, 2: 2, 3: 3, 4: 0, 5: 1, 6: 2, 7: 3]))
        #expect(t.nodes.count == 1 && t.nodes[0].memoryBytes == 8_000_000 * 1024)
        #expect(t.placement(workers: 4).map(\.cpu) == [0, 1, 2, 3])
        #expect(t.placement(workers: 6).map(\.cpu) == [0, 1, 2, 3, 4, 5])
        let over = t.placement(workers: 10)
        #expect(over.map(\.cpu) == [0, 1, 2, 3, 4, 5, 6, 7, 0, 1] && over.filter(\.shared).count == 2)
    }

    @Test("two nodes with uneven CPU counts: workers in proportion, numbered node by node")
    func twoNodes() throws {
        let t = try Topology.fromSysfs(root: sysfs(nodes: [("0-5", 1_000_000), ("6-7", 1_000_000)]))
        let p = t.placement(workers: 4)
        #expect(p.map(\.node) == [0, 0, 0, 1] && p.map(\.cpu) == [0, 1, 2, 6])
        #expect(t.placement(workers: 8).map(\.node) == [0, 0, 0, 0, 0, 0, 1, 1])
        #expect(t.placement(workers: 1).map(\.cpu) == [0])
    }

    @Test("four nodes, some CPUs not usable (affinity mask)")
    func fourNodes() throws {
        let root = sysfs(nodes: [("0-3", 1), ("4-7", 1), ("8-11", 1), ("12-15", 1)])
        let t = try Topology.fromSysfs(root: root, usable: [0, 1, 2, 3, 4, 5, 8, 12, 13, 14])
        let p = t.placement(workers: 5)
        // Usable per node 4, 2, 1, 3 of 10: 5 workers → 2, 1, 0 or 1, 2 by largest remainder.
        #expect(p.map(\.node) == [0, 0, 1, 3, 3] || p.map(\.node) == [0, 0, 1, 2, 3])
        #expect(Set(p.map(\.cpu)).isSubset(of: Set(t.usableCPUs)))
        #expect(t.placement(workers: 10).map(\.cpu).sorted() == t.usableCPUs)
        #expect(t.describe(workers: 5).contains("node 3: CPUs 12-15 (usable 12-14"))
    }

    @Test("a literal topology, and this machine's")
    func literalAndDetected() {
        let t = Topology(nodes: [NUMANode(id: 0, cpus: [0, 1]), NUMANode(id: 1, cpus: [2, 3])])
        #expect(t.placement(workers: 2).map(\.node) == [0, 1])
        let here = Topology.detect()
        #expect(!here.usableCPUs.isEmpty && !here.nodes.isEmpty)
        #expect(here.placement(workers: here.usableCPUs.count).map(\.cpu).sorted() == here.usableCPUs)
    }

    @Test("a folder that is not a topology")
    func bad() {
        #expect(throws: TopologyError.self) { try Topology.fromSysfs(root: "/nonexistent") }
    }
}
