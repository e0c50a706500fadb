// Deep Learning with Python, ch. 2.5: the MNIST example rebuilt from scratch — a naive dense layer, a naive
// sequential model, a batch generator and a training step that asks a GradientTape for the gradients and updates
// the weights by hand — written in Swift with Loom's tensors and tape.
//
//     swift run -c release FromScratch            the three runs below, then one epoch of Loom's built-in
//                                                 layers for the time per epoch
//     swift run -c release FromScratch keras 5    one run (sgd, rmsprop or keras) for some epochs
//
//  sgd      the book's naive version: SGD at 1e-3, weights uniform in [0, 0.1), batches in order, 10 epochs
//  rmsprop  the same network, initial weights and batches, with RMSprop for the book's 5 epochs
//  keras    what Keras does besides: RMSprop, Glorot-uniform initial weights and batches shuffled every epoch
//
// The book's naive version stops near 81% test accuracy, Keras' reaches 98%. The optimizer is most of the
// difference: plain SGD at 1e-3 moves every weight by the same small multiple of its gradient, while RMSprop
// divides each step by the running root-mean-square of that weight's gradient, so rarely-large gradients and tiny
// ones both make progress. The rest is the initial weights: uniform [0, 0.1) makes every first-layer unit start
// with a large positive sum of 784 inputs, Glorot's symmetric ±√(6 / (fan-in + fan-out)) keeps them near zero.
import Foundation
import Loom

/// How a layer's initial weights are drawn.
enum Initializer {
    /// Uniform in [0, 0.1), as the book's naive layer.
    case bookUniform
    /// Glorot (Xavier) uniform in ±√(6 / (fan-in + fan-out)), Keras' default for Dense.
    case glorotUniform

    func draw(fanIn: Int, fanOut: Int, rng: inout Random) -> Float {
        switch self {
        case .bookUniform: return rng.nextUniform() * 0.1
        case .glorotUniform:
            let limit = (6 / Float(fanIn + fanOut)).squareRoot()
            return (rng.nextUniform() * 2 - 1) * limit
        }
    }
}

/// A dense layer written with tensor operations: output = activation(input · W + b).
final class NaiveDense {
    let w: Variable
    let b: Variable
    let activation: (Tensor) throws(TapeError) -> Tensor

    init(
        inputSize: Int, outputSize: Int, activation: @escaping (Tensor) throws(TapeError) -> Tensor,
        initializer: Initializer, rng: inout Random
    ) throws {
        w = try Variable(
            (0..<inputSize * outputSize).map { _ in initializer.draw(fanIn: inputSize, fanOut: outputSize, rng: &rng) },
            shape: [inputSize, outputSize], name: "W")
        b = try Variable([Float](repeating: 0, count: outputSize), shape: [outputSize], name: "b")
        self.activation = activation
    }

    func callAsFunction(_ inputs: Tensor) throws(TapeError) -> Tensor {
        try activation(inputs.matmul(w.value) + b.value)
    }

    var weights: [Variable] { [w, b] }
}

/// Layers applied in order.
final class NaiveSequential {
    let layers: [NaiveDense]
    init(_ layers: [NaiveDense]) { self.layers = layers }

    func callAsFunction(_ inputs: Tensor) throws(TapeError) -> Tensor {
        var x = inputs
        for layer in layers { x = try layer(x) }
        return x
    }

    var weights: [Variable] { layers.flatMap(\.weights) }
}

/// Successive batches of a data set into one reusable buffer: in order, as the book's generator, or in an order
/// shuffled by `rng`, as Keras' `fit` does every epoch.
final class BatchGenerator {
    let data: Dataset
    let batchSize: Int
    var index = 0
    let images: UnsafeMutablePointer<Float>
    let labels: UnsafeMutablePointer<Int32>
    let order: UnsafeMutablePointer<Int32>

    init(_ data: Dataset, batchSize: Int, shuffle rng: inout Random?) {
        self.data = data
        self.batchSize = batchSize
        images = .allocate(capacity: batchSize * data.features)
        labels = .allocate(capacity: batchSize)
        order = .allocate(capacity: data.count)
        if rng != nil {
            shuffledIndices(data.count, rng: &rng!, into: order)
        } else {
            for i in 0..<data.count { order[i] = Int32(i) }
        }
    }

    convenience init(_ data: Dataset, batchSize: Int) {
        var inOrder: Random? = nil
        self.init(data, batchSize: batchSize, shuffle: &inOrder)
    }

    deinit {
        images.deallocate()
        labels.deallocate()
        order.deallocate()
    }

    var batches: Int { (data.count + batchSize - 1) / batchSize }

    /// The next batch's row count; its images and labels are in `images` and `labels`.
    func next() -> Int {
        let n = min(batchSize, data.count - index)
        data.gather(order + index, count: n, into: images, ld: data.features, labels: labels)
        index += n
        return n
    }
}

/// How the weights move, given their gradients.
protocol WeightUpdate {
    func update(_ gradients: [Tensor], _ weights: [Variable]) throws
}

/// w ← w − lr·g (the book's `update_weights`).
struct SGD: WeightUpdate {
    var learningRate: Float = 1e-3
    func update(_ gradients: [Tensor], _ weights: [Variable]) throws {
        for (g, w) in zip(gradients, weights) { try w.update(with: g) { w, g in w - learningRate * g } }
    }
}

/// Keras 3's RMSprop: a ← ρ·a + (1 − ρ)·g², w ← w − lr·g / √(a + ε).
final class RMSprop: WeightUpdate {
    let learningRate: Float = 1e-3
    let rho: Float = 0.9
    let epsilon: Float = 1e-7
    var averages: [UnsafeMutablePointer<Float>] = []

    deinit { for a in averages { a.deallocate() } }

    func update(_ gradients: [Tensor], _ weights: [Variable]) {
        if averages.isEmpty {
            averages = weights.map {
                let a = UnsafeMutablePointer<Float>.allocate(capacity: $0.shape.count)
                a.initialize(repeating: 0, count: $0.shape.count)
                return a
            }
        }
        for (k, (g, w)) in zip(gradients, weights).enumerated() {
            let (a, p) = (averages[k], w.buffer.pointer)
            for i in 0..<w.shape.count {
                a[i] = rho * a[i] + (1 - rho) * g.data[i] * g.data[i]
                p[i] -= learningRate * g.data[i] / (a[i] + epsilon).squareRoot()
            }
        }
    }
}

/// One step (the book's `one_training_step`): predictions and the mean loss on the tape, its gradients with
/// respect to the weights, the update.
func oneTrainingStep(
    _ model: NaiveSequential, _ tape: GradientTape, _ batch: BatchGenerator, rows: Int, optimizer: WeightUpdate
) throws -> Float {
    tape.reset()  // reuse the tape's memory: this step allocates no tensor memory after the first
    let labels = UnsafeBufferPointer(start: batch.labels, count: rows)
    let averageLoss = try tape.record {
        let predictions = try model(tape.constant(wrapping: batch.images, shape: [rows, batch.data.features]))
        return try sparseCategoricalCrossentropy(probabilities: predictions, labels: labels)
    }
    let gradients = try tape.gradient(of: averageLoss, withRespectTo: model.weights)
    try optimizer.update(gradients, model.weights)
    return averageLoss.scalar
}

/// The book's `fit`: epochs of batches (shuffled when `shuffle` holds a generator); returns each epoch's seconds.
func fit(
    _ model: NaiveSequential, _ data: Dataset, epochs: Int, batchSize: Int = 128, optimizer: WeightUpdate,
    shuffle: Random? = nil
) throws -> [Double] {
    let tape = GradientTape()
    var seconds: [Double] = []
    var rng = shuffle
    for epoch in 1...epochs {
        let generator = BatchGenerator(data, batchSize: batchSize, shuffle: &rng)
        let start = Date()
        var loss: Float = 0
        for _ in 0..<generator.batches {
            let rows = generator.next()
            loss = try oneTrainingStep(model, tape, generator, rows: rows, optimizer: optimizer)
        }
        seconds.append(Date().timeIntervalSince(start))
        print(String(format: "epoch %d: loss at the last batch %.4f (%.2f s)", epoch, loss, seconds.last!))
    }
    return seconds
}

/// The fraction of `data` whose most probable class is its label.
func accuracy(_ model: NaiveSequential, _ data: Dataset) throws -> Double {
    let generator = BatchGenerator(data, batchSize: 1000)
    let tape = GradientTape()
    var correct = 0
    for _ in 0..<generator.batches {
        let rows = generator.next()
        tape.reset()
        let p = try tape.record { try model(tape.constant(wrapping: generator.images, shape: [rows, data.features])) }
        for r in 0..<rows {
            let row = p.data + r * 10
            let best = (0..<10).max { row[$0] < row[$1] }!
            if best == Int(generator.labels[r]) { correct += 1 }
        }
    }
    return Double(correct) / Double(data.count)
}

/// 784 → 512 relu → 10 softmax; the same seed for every run.
func makeModel(_ initializer: Initializer) throws -> NaiveSequential {
    var rng = Random(seed: 1)
    return try NaiveSequential([
        NaiveDense(
            inputSize: 28 * 28, outputSize: 512, activation: { x throws(TapeError) in try x.relu() },
            initializer: initializer, rng: &rng),
        NaiveDense(
            inputSize: 512, outputSize: 10, activation: { x throws(TapeError) in try x.softmax() },
            initializer: initializer, rng: &rng),
    ])
}

/// One of the runs the header describes.
enum Run: String {
    case sgd, rmsprop, keras

    var bookEpochs: Int { self == .sgd ? 10 : 5 }

    func train(_ data: Dataset, epochs: Int) throws -> (NaiveSequential, [Double]) {
        let model = try makeModel(self == .keras ? .glorotUniform : .bookUniform)
        let optimizer: WeightUpdate = self == .sgd ? SGD() : RMSprop()
        let seconds = try fit(
            model, data, epochs: epochs, optimizer: optimizer, shuffle: self == .keras ? Random(seed: 2) : nil)
        return (model, seconds)
    }
}

do {
    let arguments = Array(CommandLine.arguments.dropFirst())
    let here = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
    let data = try loadDataset(
        DataSource(dataset: "mnist", path: here.appendingPathComponent("../../../../data/mnist").path))
    var runs: [(Run, Int)] = [(.sgd, 10), (.rmsprop, 5), (.keras, 5)]
    if let name = arguments.first {
        guard let run = Run(rawValue: name) else {
            FileHandle.standardError.write(Data("error: the run is sgd, rmsprop or keras, not '\(name)'\n".utf8))
            exit(2)
        }
        let epochs = arguments.count > 1 ? Int(arguments[1]) : run.bookEpochs
        guard let epochs, epochs > 0 else {
            FileHandle.standardError.write(Data("error: the epochs are a positive whole number\n".utf8))
            exit(2)
        }
        runs = [(run, epochs)]
    }
    var tapeSeconds: [Double] = []
    for (run, epochs) in runs {
        print("\(run.rawValue), \(epochs) epochs, batch 128:")
        let (model, seconds) = try run.train(data.train, epochs: epochs)
        tapeSeconds += seconds
        print(String(format: "%@: test accuracy %.4f", run.rawValue, try accuracy(model, data.test)))
    }
    if arguments.isEmpty {
        // The built-in layers on one worker, for the time per epoch (the tape above runs on one thread).
        let builtIn = try Model(
            inputWidth: 784, layers: [Dense(units: 512, activation: .relu), Dense(units: 10, activation: .softmax)],
            loss: .sparseCategoricalCrossentropy, optimizer: .rmsprop())
        let record = try builtIn.fit(data.train, epochs: 1, batchSize: 128, workers: 1)[0]
        let median = tapeSeconds.sorted()[tapeSeconds.count / 2]
        print(
            String(
                format: "seconds per epoch: tape %.2f (median), built-in layers on 1 worker %.2f (%.2f×)", median,
                record.seconds, median / record.seconds))
    }
} catch {
    FileHandle.standardError.write(Data("error: \(error)\n".utf8))
    exit(1)
}
