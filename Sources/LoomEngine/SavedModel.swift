// A model read back from a weights file or checkpoint: the config in its metadata rebuilds the model, the
// tensors fill it. `loom evaluate` and `loom predict` start here.
import Foundation
import LoomConfig
import LoomData
import LoomNN

/// Weights plus the config that describes them.
public struct SavedModel {
    public let path: String
    public let config: RunConfig
    public let tensors: [NamedTensor]
    public let inputWidth: Int

    /// Reads `path` (a Loom weights file or checkpoint) and checks its config.
    public init(path: String) throws(LoomError) {
        let read: (tensors: [NamedTensor], metadata: [String: String])
        do { read = try SafeTensors.read(path) } catch { throw .weights(error) }
        guard let yaml = read.metadata["config"], let width = read.metadata["input_width"].flatMap({ Int($0) }),
            width > 0
        else {
            throw .weights(
                .mismatch(
                    path,
                    "has no Loom model description in its metadata (config, input_width); was it written by loom train --save-weights?"
                ))
        }
        do { config = try ConfigLoader.parse(yaml, file: path + " (metadata)") } catch { throw .config(error) }
        self.path = path
        tensors = read.tensors
        inputWidth = width
    }

    /// A fresh model of the saved architecture holding the saved weights.
    public func makeModel() throws(LoomError) -> Sequential {
        let model = config.makeModel(inputWidth: inputWidth)
        do { try Checkpoint.load(tensors, into: model, path: path) } catch { throw .weights(error) }
        return model
    }

    /// Loss, accuracy and confusion matrix on a data set's test split (the saved config's data, or `data`).
    public func evaluate(data: DataSource?, workers: Int?) throws(LoomError) -> (Evaluation, Dataset) {
        var config = self.config
        if let data { config.data = data }
        config.training.workers = workers
        config.training.validationSplit = 0
        let run = try TrainingRun(config: config)
        let model = try makeModel()
        run.model.parameters.pointer.update(from: model.parameters.pointer, count: model.parameterCount)
        return (run.trainer.evaluate(run.data.test), run.data.test)
    }

    /// Class probabilities of each sample of `inputs` (rows of `inputWidth` values in [0, 1]).
    public func predict(_ inputs: [[Float]]) throws(LoomError) -> [[Float]] {
        let model = try makeModel()
        let data = Dataset(
            name: "inputs", features: inputWidth, classes: model.outputWidth, values: inputs.flatMap { $0 },
            labels: [Int32](repeating: 0, count: inputs.count))
        let trainer = Trainer(
            model: model, optimizer: config.optimizer, placements: Topology.detect().placement(workers: 1),
            batchSize: max(1, min(inputs.count, 256)), seed: 0)
        let flat = trainer.predict(data)
        let c = model.outputWidth
        return (0..<inputs.count).map { Array(flat[$0 * c..<($0 + 1) * c]) }
    }
}

/// The images of a prediction input: an IDX image file (every image), a PGM or a PNG file.
public func readPredictionInputs(_ path: String, features: Int) throws(LoomError) -> [(String, [Float])] {
    let bytes = FileManager.default.contents(atPath: path).map { [UInt8]($0) } ?? []
    let isIDX =
        bytes.count >= 4 && bytes[0] == 0 && bytes[1] == 0 && bytes[2] == 8
        || bytes.count >= 2 && bytes[0] == 0x1f && bytes[1] == 0x8b
    if isIDX {
        let array: IDXArray
        do { array = try readIDX(path: path) } catch { throw .data(error) }
        let per = array.dimensions.dropFirst().reduce(1, *)
        guard array.dimensions.count >= 2, per == features else {
            throw .data(
                .mismatch(
                    path,
                    reason:
                        "holds samples of \(array.dimensions.dropFirst().map(String.init).joined(separator: "×")) values; the model takes \(features)"
                ))
        }
        return (0..<array.dimensions[0]).map { i in
            ("\(path)[\(i)]", array.bytes[i * per..<(i + 1) * per].map { Float($0) / 255 })
        }
    }
    let image: GreyImage
    do { image = try readImage(path: path) } catch { throw .data(error) }
    guard image.width * image.height == features else {
        let side = Int(Double(features).squareRoot())
        let expected = side * side == features ? "\(side)×\(side)" : "\(features) pixels"
        throw .data(.mismatch(path, reason: "is \(image.width)×\(image.height); the model takes \(expected) images"))
    }
    return [(path, image.pixels)]
}
