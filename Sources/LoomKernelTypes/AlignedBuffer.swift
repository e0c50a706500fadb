// AlignedBuffer: a fixed-size, 64-byte-aligned, zero-initialized block of Float32 — one cache line per 16 floats,
// so SIMD16 loads never straddle lines and two workers' buffers never share one.

/// The alignment of every buffer Loom allocates: one cache line, one AVX-512 register.
public let cacheLineBytes = 64

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
        let padded = max(16, (count + 15) / 16 * 16)
        let raw = UnsafeMutableRawPointer.allocate(
            byteCount: padded * MemoryLayout<Float>.stride,
            alignment: cacheLineBytes)
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
