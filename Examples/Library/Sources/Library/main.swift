// The book's MNIST example with Loom's Keras-style API: 784 → Dense(512, relu) → Dense(10, softmax), RMSprop,
// batch 128, on every usable CPU. Usage: swift run -c release [epochs]
import Foundation
import Loom

let epochs = CommandLine.arguments.dropFirst().first.flatMap(Int.init) ?? 5
do {
    let here = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
    let data = try loadDataset(
        DataSource(dataset: "mnist", path: here.appendingPathComponent("../../../../data/mnist").path))
    let model = try Model(inputWidth: 784, loss: .sparseCategoricalCrossentropy, optimizer: .rmsprop()) {
        Dense(units: 512, activation: .relu)
        Dense(units: 10, activation: .softmax)
    }
    print(model.network.summary())
    for record in try model.fit(data.train, epochs: epochs, batchSize: 128) {
        print(
            String(
                format: "epoch %d: loss %.4f, accuracy %.4f (%.2f s)", record.epoch, record.loss, record.accuracy,
                record.seconds))
    }
    let test = try model.evaluate(data.test)
    print(String(format: "test accuracy %.4f", test.accuracy))
    print("weights_digest: \(model.network.weightsDigest())")
} catch {
    FileHandle.standardError.write(Data("error: \(error)\n".utf8))
    exit(1)
}
