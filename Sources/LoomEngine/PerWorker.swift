// PerWorker: one value per worker, each in its own cache line(s).

/// A fixed array of per-worker slots, each padded to a whole number of 64-byte cache lines so that workers
/// writing their own slots never share a line (no false sharing), and never race on a shared Array buffer.
///
/// Why `@unchecked Sendable` is sound: slot w is written only by worker w (or by the main thread while no
/// job runs), and read by others only after a barrier or after the job completes, which order the accesses.
public final class PerWorker<T>: @unchecked Sendable {
    private let raw: UnsafeMutableRawPointer
    private let stride: Int
    /// The number of workers.
    public let count: Int

    /// One `initial` value per worker.
    public init(count: Int, initial: T) {
        self.count = count
        stride = (MemoryLayout<T>.stride + 63) / 64 * 64
        raw = .allocate(byteCount: max(1, count) * stride, alignment: 64)
        for w in 0..<count { (raw + w * stride).initializeMemory(as: T.self, repeating: initial, count: 1) }
    }

    deinit {
        for w in 0..<count { (raw + w * stride).assumingMemoryBound(to: T.self).deinitialize(count: 1) }
        raw.deallocate()
    }

    /// Worker `w`'s value.
    public subscript(_ w: Int) -> T {
        get { (raw + w * stride).assumingMemoryBound(to: T.self).pointee }
        set { (raw + w * stride).assumingMemoryBound(to: T.self).pointee = newValue }
    }

    /// All slots, in worker order (a copy).
    public var values: [T] { (0..<count).map { self[$0] } }
}
