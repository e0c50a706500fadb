// Loom, one import: the public API of every module a Swift program needs (models and layers, data sets,
// configs, the trainer and the Keras-style `Model`; tensors and the GradientTape). See the README's "From Swift" section.
@_exported import LoomConfig
@_exported import LoomData
@_exported import LoomEngine
@_exported import LoomNN
@_exported import LoomTape

/// Keras' `fit` on the tape's tensors.
extension Model {
    /// Keras' `fit` on tensors: `x` of shape (samples, inputWidth); `y` of shape (samples,) holding class indices,
    /// or (samples, outputs) holding real-valued targets (regression, one-hot or soft labels). The tensors are
    /// read once, before training (their tape may be reset afterwards).
    @discardableResult
    public func fit(
        x: Tensor, y: Tensor, epochs: Int, batchSize: Int = 32, validationSplit: Double = 0,
        callbacks: [CallbackConfig] = [], workers: Int? = nil, progress: (TrainingProgress) -> Void = { _ in }
    ) throws(LoomError) -> [EpochRecord] {
        guard x.shape.rank == 2, y.shape.rank == 1 || y.shape.rank == 2, y.shape[0] == x.shape[0] else {
            throw .usage(
                "fit(x:y:) on tensors takes x of shape (samples, features) and y of shape (samples,) or (samples, outputs); got x \(x.shape) and y \(y.shape)"
            )
        }
        let rows = x.shape.dims[0]
        let features = x.shape.dims[1]
        let samples = (0..<rows).map { Array(UnsafeBufferPointer(start: x.data + $0 * features, count: features)) }
        if y.shape.rank == 1 {
            var labels: [Int] = []
            for value in y.scalars {
                guard value.rounded() == value, value >= 0, value < Float(Int32.max) else {
                    throw .usage("fit(x:y:): y of shape \(y.shape) holds class indices; \(value) is not one")
                }
                labels.append(Int(value))
            }
            return try fit(
                x: samples, y: labels, epochs: epochs, batchSize: batchSize, validationSplit: validationSplit,
                callbacks: callbacks, workers: workers, progress: progress)
        }
        let width = y.shape.dims[1]
        let targets = (0..<rows).map { Array(UnsafeBufferPointer(start: y.data + $0 * width, count: width)) }
        return try fit(
            x: samples, y: targets, epochs: epochs, batchSize: batchSize, validationSplit: validationSplit,
            callbacks: callbacks, workers: workers, progress: progress)
    }
}
