// A batch's targets, beside its inputs: each row's class index, real-valued targets (regression, or one-hot / soft
// class probabilities) and sample weight, in buffers sized once for the largest batch. Workers gather disjoint
// rows; the loss reads them through a `Targets` view that allocates nothing.
import LoomData
import LoomNN

/// The target buffers of a batch of up to `capacity` rows, `width` real values per row.
final class BatchTargets: @unchecked Sendable {
    // Sendable: each worker writes only its own rows (gather), and reads them (loss) after writing them.
    let capacity: Int
    let width: Int
    let labels: UnsafeMutablePointer<Int32>
    let values: UnsafeMutablePointer<Float>
    let weights: UnsafeMutablePointer<Float>

    init(capacity: Int, width: Int) {
        self.capacity = capacity
        self.width = width
        labels = .allocate(capacity: max(1, capacity))
        values = .allocate(capacity: max(1, capacity * width))
        weights = .allocate(capacity: max(1, capacity))
    }

    deinit {
        labels.deallocate()
        values.deallocate()
        weights.deallocate()
    }

    /// Samples `indices[0..<rows.count]` of `data` into batch rows `rows`: inputs (`features` wide) into `input`,
    /// and their targets and weights into these buffers.
    @inline(__always)
    func gather(
        _ data: Dataset, _ indices: UnsafePointer<Int32>, rows: Range<Int>, input: UnsafeMutablePointer<Float>,
        features: Int
    ) {
        data.gather(
            indices, count: rows.count, into: input + rows.lowerBound * features, ld: features,
            labels: labels + rows.lowerBound, targets: values + rows.lowerBound * width,
            weights: weights + rows.lowerBound)
    }

    /// The view the loss reads for a batch of `data`: real values and weights only where the data has them.
    func targets(for data: Dataset) -> Targets {
        precondition(data.targetWidth == 0 || data.targetWidth == width, "targets checked against the outputs")
        return Targets(
            labels: labels, values: data.targetWidth > 0 ? UnsafePointer(values) : nil, width: width,
            weights: data.hasWeights ? UnsafePointer(weights) : nil)
    }
}
