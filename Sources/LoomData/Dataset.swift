// Dataset: samples as rows of `features` values and their targets — a class index each, or rows of real values
// (regression; one-hot or soft class probabilities) — and optionally a weight each. Images stay bytes in memory
// (MNIST's training set is 47 MB instead of 188 MB as floats) and become floats in [0, 1] only when a batch is
// gathered.
import Foundation
import LoomKernels

/// A labelled data set, immutable once loaded; subsets share its storage.
public final class Dataset: @unchecked Sendable {
    // Sendable: nothing changes after init; workers only read.
    /// The name in messages and reports (`mnist train`).
    public let name: String
    /// Values per sample.
    public let features: Int
    /// Classes of the labels (or outputs of real-valued targets).
    public let classes: Int
    /// Samples.
    public let count: Int
    /// The classes' names, when the data named them (a CSV class column of text), in class-index order.
    public private(set) var classNames: [String]?
    /// Values per target row: 0 when the targets are class indices (`label(_:)`), else the width of the
    /// real-valued targets (`target(_:_:)`), whose labels are then each row's largest value's index.
    public let targetWidth: Int
    /// The raw samples: bytes (scaled by `scale` on gathering) or floats.
    private let storage: Storage
    private let labelStore: LabelStore
    private let targetStore: AlignedBuffer?
    private let weightStore: AlignedBuffer?
    private let first: Int

    /// Whether the samples carry weights (`weight(_:)`); without, every weight is 1.
    public var hasWeights: Bool { weightStore != nil }

    enum Storage {
        case bytes(ByteStore, scale: Float)
        case floats(AlignedBuffer)
    }
    final class ByteStore: @unchecked Sendable {
        let pointer: UnsafeMutablePointer<UInt8>
        init(_ bytes: [UInt8]) {
            pointer = .allocate(capacity: max(1, bytes.count))
            bytes.withUnsafeBufferPointer { pointer.initialize(from: $0.baseAddress!, count: bytes.count) }
        }
        deinit { pointer.deallocate() }
    }
    final class LabelStore: @unchecked Sendable {
        let pointer: UnsafeMutablePointer<Int32>
        init(_ labels: [Int32]) {
            pointer = .allocate(capacity: max(1, labels.count))
            labels.withUnsafeBufferPointer { pointer.initialize(from: $0.baseAddress!, count: labels.count) }
        }
        deinit { pointer.deallocate() }
    }

    /// A data set of byte samples (pixels), each `features` bytes, scaled by `scale` (1/255) on gathering.
    public init(name: String, features: Int, classes: Int, bytes: [UInt8], labels: [Int32], scale: Float = 1 / 255) {
        precondition(bytes.count == features * labels.count)
        self.name = name
        self.features = features
        self.classes = classes
        count = labels.count
        storage = .bytes(ByteStore(bytes), scale: scale)
        labelStore = LabelStore(labels)
        (targetWidth, targetStore, weightStore, first) = (0, nil, nil, 0)
    }

    /// A data set of float samples.
    public init(name: String, features: Int, classes: Int, values: [Float], labels: [Int32]) {
        precondition(values.count == features * labels.count)
        self.name = name
        self.features = features
        self.classes = classes
        count = labels.count
        let buffer = AlignedBuffer(count: values.count)
        values.withUnsafeBufferPointer { buffer.pointer.update(from: $0.baseAddress!, count: values.count) }
        storage = .floats(buffer)
        labelStore = LabelStore(labels)
        (targetWidth, targetStore, weightStore, first) = (0, nil, nil, 0)
    }

    /// A data set of float samples already in an aligned buffer (at least features × labels.count floats).
    public init(name: String, features: Int, classes: Int, floats: AlignedBuffer, labels: [Int32]) {
        precondition(floats.count >= features * labels.count)
        self.name = name
        self.features = features
        self.classes = classes
        count = labels.count
        storage = .floats(floats)
        labelStore = LabelStore(labels)
        (targetWidth, targetStore, weightStore, first) = (0, nil, nil, 0)
    }

    /// `parent`'s samples `range`, with its targets and weights unless others are given (each store indexed
    /// like the parent's storage, from its first sample).
    private init(
        _ parent: Dataset, range: Range<Int>, name: String, classes: Int? = nil,
        targets: (width: Int, store: AlignedBuffer, labels: LabelStore)? = nil, weights: AlignedBuffer? = nil
    ) {
        self.name = name
        features = parent.features
        self.classes = classes ?? parent.classes
        count = range.count
        storage = parent.storage
        labelStore = targets?.labels ?? parent.labelStore
        targetWidth = targets?.width ?? parent.targetWidth
        targetStore = targets?.store ?? parent.targetStore
        weightStore = weights ?? parent.weightStore
        first = parent.first + range.lowerBound
        classNames = parent.classNames
    }

    /// The same samples with real-valued targets, `width` per sample (row-major, `count` rows): regression
    /// targets, or one-hot / soft class probabilities. Each sample's label becomes its largest target's index
    /// (for one target, 1 when it exceeds 0.5), so accuracy and confusion matrices still read labels.
    public func withTargets(_ values: [Float], width: Int) -> Dataset {
        precondition(width > 0 && values.count == count * width)
        let store = AlignedBuffer(count: (first + count) * width)
        values.withUnsafeBufferPointer {
            store.pointer.advanced(by: first * width).update(from: $0.baseAddress!, count: values.count)
        }
        var labels = [Int32](repeating: 0, count: first + count)
        for i in 0..<count {
            let row = values[(i * width)..<((i + 1) * width)]
            if width == 1 {
                labels[first + i] = row[row.startIndex] > 0.5 ? 1 : 0
            } else {
                labels[first + i] = Int32(row.indices.max { row[$0] < row[$1] }! - row.startIndex)
            }
        }
        return Dataset(
            self, range: 0..<count, name: name, classes: max(2, width),
            targets: (width, store, LabelStore(labels)), weights: weightStore
        )
    }

    /// The same samples, each with a weight (Keras' sample_weight; `count` values, finite and ≥ 0).
    public func weighted(_ weights: [Float]) -> Dataset {
        precondition(weights.count == count)
        let store = AlignedBuffer(count: first + count)
        weights.withUnsafeBufferPointer {
            store.pointer.advanced(by: first).update(from: $0.baseAddress!, count: count)
        }
        return Dataset(self, range: 0..<count, name: name, weights: store)
    }

    /// The targets as one array (row-major), for real-valued targets.
    public var targetArray: [Float] {
        targetStore.map {
            Array(UnsafeBufferPointer(start: $0.pointer + first * targetWidth, count: count * targetWidth))
        }
            ?? []
    }

    /// The weights as one array, when the samples carry weights.
    public var weightArray: [Float]? {
        weightStore.map { Array(UnsafeBufferPointer(start: $0.pointer + first, count: count)) }
    }

    /// The weight of sample i (1 without weights).
    @inline(__always) public func weight(_ i: Int) -> Float { weightStore.map { $0.pointer[first + i] } ?? 1 }

    /// Target j of sample i (real-valued targets only).
    @inline(__always) public func target(_ i: Int, _ j: Int) -> Float {
        targetStore!.pointer[(first + i) * targetWidth + j]
    }

    /// Names the classes (in class-index order).
    public func naming(_ names: [String]?) -> Dataset {
        classNames = names
        return self
    }

    /// Each feature's mean and standard deviation over this data set's samples (a zero deviation counts as 1).
    public func featureStatistics() -> FeatureScaling {
        var sum = [Double](repeating: 0, count: features)
        var squares = [Double](repeating: 0, count: features)
        var row = [Float](repeating: 0, count: features)
        var label: Int32 = 0
        for i in 0..<count {
            row.withUnsafeMutableBufferPointer {
                gather(range: i, count: 1, into: $0.baseAddress!, ld: features, labels: &label)
            }
            for j in 0..<features {
                sum[j] += Double(row[j])
                squares[j] += Double(row[j]) * Double(row[j])
            }
        }
        let n = Double(max(1, count))
        let mean = sum.map { $0 / n }
        let std = zip(squares, mean).map { s, m in
            let v = (s / n - m * m).squareRoot()
            return v > 1e-12 ? v : 1
        }
        return FeatureScaling(mean: mean.map(Float.init), std: std.map(Float.init))
    }

    /// The same samples with each feature standardized, (x − mean) / std: float samples are rewritten in place
    /// (this data set's rows only, so subsets sharing storage are each done once), byte samples become floats.
    public func standardized(_ s: FeatureScaling) -> Dataset {
        precondition(s.mean.count == features && s.std.count == features)
        switch storage {
        case .floats(let buffer):
            for i in first..<first + count {
                let row = buffer.pointer + i * features
                for j in 0..<features { row[j] = (row[j] - s.mean[j]) / s.std[j] }
            }
            return self
        case .bytes:
            var values = [Float](repeating: 0, count: count * features)
            var labels = [Int32](repeating: 0, count: count)
            values.withUnsafeMutableBufferPointer { v in
                labels.withUnsafeMutableBufferPointer { l in
                    gather(range: 0, count: count, into: v.baseAddress!, ld: features, labels: l.baseAddress!)
                }
            }
            for i in 0..<count {
                for j in 0..<features { values[i * features + j] = (values[i * features + j] - s.mean[j]) / s.std[j] }
            }
            var result = Dataset(name: name, features: features, classes: classes, values: values, labels: labels)
            if targetWidth > 0 { result = result.withTargets(targetArray, width: targetWidth) }
            if let weights = weightArray { result = result.weighted(weights) }
            return result.naming(classNames)
        }
    }

    /// Bytes of the samples and labels this data set holds (shared with its subsets).
    public var storageBytes: Int { memoryBytes }

    /// Samples `range`, sharing storage (Keras' validation_split takes the last fraction this way).
    public func subset(_ range: Range<Int>, name: String? = nil) -> Dataset {
        precondition(range.lowerBound >= 0 && range.upperBound <= count)
        return Dataset(self, range: range, name: name ?? self.name)
    }

    /// The label of sample i.
    @inline(__always) public func label(_ i: Int) -> Int32 { labelStore.pointer[first + i] }

    /// Writes samples `indices[0..<n]` as float rows (stride `ld`) and their labels; with `targets`, their
    /// real-valued targets (rows of `targetWidth`), with `weights` their weights (when the data has them).
    public func gather(
        _ indices: UnsafePointer<Int32>, count n: Int, into rows: UnsafeMutablePointer<Float>, ld: Int,
        labels: UnsafeMutablePointer<Int32>, targets: UnsafeMutablePointer<Float>? = nil,
        weights: UnsafeMutablePointer<Float>? = nil
    ) {
        for r in 0..<n {
            assert(indices[r] >= 0 && Int(indices[r]) < count, "sample \(indices[r]) of \(count)")
            let i = first + Int(indices[r])
            let out = rows + r * ld
            switch storage {
            case .bytes(let store, let scale):
                let src = store.pointer + i * features
                for j in 0..<features { out[j] = Float(src[j]) * scale }
            case .floats(let buffer):
                out.update(from: buffer.pointer + i * features, count: features)
            }
            labels[r] = labelStore.pointer[i]
            if let targets, let store = targetStore {
                (targets + r * targetWidth).update(from: store.pointer + i * targetWidth, count: targetWidth)
            }
            if let weights, let store = weightStore { weights[r] = store.pointer[i] }
        }
    }

    /// Writes samples start..<start+n in order (evaluation).
    public func gather(
        range start: Int, count n: Int, into rows: UnsafeMutablePointer<Float>, ld: Int,
        labels: UnsafeMutablePointer<Int32>, targets: UnsafeMutablePointer<Float>? = nil,
        weights: UnsafeMutablePointer<Float>? = nil
    ) {
        withUnsafeTemporaryAllocation(of: Int32.self, capacity: max(1, n)) { idx in
            for r in 0..<n { idx[r] = Int32(start + r) }
            gather(idx.baseAddress!, count: n, into: rows, ld: ld, labels: labels, targets: targets, weights: weights)
        }
    }

    /// The bytes held in memory for the samples.
    public var memoryBytes: Int {
        let extra = count * 4 * (targetWidth + (weightStore == nil ? 0 : 1))
        switch storage {
        case .bytes: return count * features + count * 4 + extra
        case .floats: return count * features * 4 + count * 4 + extra
        }
    }
}

/// A train/test pair.
public struct DataSplits: Sendable {
    /// The training split.
    public var train: Dataset
    /// The test split.
    public var test: Dataset
    /// The standardization applied to all (`data.standardize`), from the training split's statistics.
    public var scaling: FeatureScaling?
    /// A validation set of its own (Keras' validation_data), instead of a fraction held out of the training set.
    public var validation: Dataset?
    /// Splits of a data set, with the training split's feature scaling if it was standardized.
    public init(train: Dataset, test: Dataset, scaling: FeatureScaling? = nil, validation: Dataset? = nil) {
        self.train = train
        self.test = test
        self.scaling = scaling
        self.validation = validation
    }
}

/// Per-feature standardization, x → (x − mean) / std, as scikit-learn's StandardScaler: its statistics come from
/// the training samples and are saved with the weights, so evaluation and prediction apply the same transform.
public struct FeatureScaling: Sendable, Equatable, Codable {
    /// Each feature's mean over the training split.
    public var mean: [Float]
    /// Each feature's standard deviation over the training split (1 where it is 0).
    public var std: [Float]
    /// Statistics computed elsewhere (read back from saved weights).
    public init(mean: [Float], std: [Float]) {
        self.mean = mean
        self.std = std
    }
}
