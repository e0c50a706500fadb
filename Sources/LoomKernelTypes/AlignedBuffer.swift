// AlignedBuffer: a fixed-size, 64-byte-aligned, zero-initialized block of Float32 — one cache line per 16 floats,
// so SIMD16 loads never straddle lines and two workers' buffers never share one.

import Glibc
import Synchronization

/// The alignment of every buffer Loom allocates: one cache line, one AVX-512 register.
public let cacheLineBytes = 64

/// Whether large buffers are backed by transparent huge pages (2 MiB instead of 4 KiB).
///
/// Off by default. When on, a buffer of at least 1 MiB starts on a 2 MiB boundary, is rounded up to whole
/// 2 MiB pages and is advised `MADV_HUGEPAGE` (Linux's default THP mode, `madvise`, then backs it with huge
/// pages). A training run turns it on where its process's CPUs lie on one NUMA node (see `TrainingRun`): an MPI
/// rank's shared-memory transport pins the pages of every buffer it reads from another process each step, 512
/// times fewer with huge pages (~5% faster steps on 2 ranks); on one process the products stream their packed
/// operands through 512 times fewer TLB entries (Zen 4, the wide model's one-worker step 1.5% faster, the book's
/// unchanged). It stays off on CPUs spread over several NUMA nodes, where pages of 2 MiB would place the owners'
/// slices of a tensor coarsely. Set it before allocating.
public enum HugePages {
    private static let on = Atomic<Bool>(false)
    /// The threshold in bytes.
    public static let minimumBytes = 1 << 20
    /// The page size used.
    public static let pageBytes = 2 << 20
    /// Whether buffers allocated from now on may use huge pages.
    public static var enabled: Bool {
        get { on.load(ordering: .relaxed) }
        set { on.store(newValue, ordering: .relaxed) }
    }
}

/// A fixed-size block of `Float`s aligned to 64 bytes, owned by this object and freed with it.
///
/// Kernels never see this class: they take the `pointer` (or a `UnsafeMutableBufferPointer`) so a training step
/// does no reference counting. The memory is untouched until first written, so the thread that first writes a
/// page places it on its NUMA node.
public final class AlignedBuffer: @unchecked Sendable {
    // Sendable because the object itself never changes after init; what threads do with the floats it owns is
    // arranged by the engine (disjoint row ranges, barriers), see LoomEngine/SharedState.swift.
    public let pointer: UnsafeMutablePointer<Float>
    public let count: Int

    /// Allocates `count` floats (at least one), rounded up to a whole number of cache lines. With `zeroed`, the
    /// floats are set to 0 by the calling thread (which then owns the pages' placement).
    public init(count: Int, zeroed: Bool = true) {
        precondition(count >= 0, "negative buffer size")
        var padded = max(16, (count + 15) / 16 * 16)
        let huge = HugePages.enabled && padded * 4 >= HugePages.minimumBytes
        if huge { padded = (padded * 4 + HugePages.pageBytes - 1) / HugePages.pageBytes * HugePages.pageBytes / 4 }
        let raw = UnsafeMutableRawPointer.allocate(
            byteCount: padded * MemoryLayout<Float>.stride,
            alignment: huge ? HugePages.pageBytes : cacheLineBytes)
        // Advice only: where the kernel has no huge page to give, the buffer keeps small ones.
        if huge { _ = madvise(raw, padded * 4, MADV_HUGEPAGE) }
        pointer = raw.bindMemory(to: Float.self, capacity: padded)
        self.count = count
        if zeroed { pointer.initialize(repeating: 0, count: padded) }
    }

    deinit { UnsafeMutableRawPointer(pointer).deallocate() }

    /// The floats as a buffer pointer (no copy).
    public var buffer: UnsafeMutableBufferPointer<Float> { UnsafeMutableBufferPointer(start: pointer, count: count) }

    /// A copy of the contents, for tests and reports (allocates; never use in a training step).
    public var array: [Float] { Array(buffer) }

    /// Sets every float to `value`.
    public func fill(_ value: Float) { pointer.update(repeating: value, count: count) }
}
