// A model read back from a weights file or checkpoint: the config in its metadata rebuilds the model, the
// tensors fill it. `loom evaluate` and `loom predict` start here.
import Foundation
import LoomConfig
import LoomData
import LoomNN

/// Weights plus the config that describes them.
public struct SavedModel {
    /// The file it was read from.
    public let path: String
    /// The run config stored with the weights.
    public let config: RunConfig
    /// The tensors, in the model's order.
    public let tensors: [NamedTensor]
    /// Features per sample.
    public let inputWidth: Int
    /// The class names and the feature standardization of the training data, when it had them.
    public let classNames: [String]?
    /// The feature standardization saved with the weights, if any.
    public let scaling: FeatureScaling?
    /// The custom layers of a model saved from Swift ("1: ScaledTanh"), which the config cannot rebuild; nil when
    /// every layer is a built-in one.
    public let customLayers: String?
    /// The name of the custom loss the model was trained on, if any.
    public let customLoss: String?

    /// Reads `path` (a Loom weights file or checkpoint) and checks its config.
    public init(path: String) throws(LoomError) {
        if let kind = FileKind.of(path), kind != .safetensors {
            let hint =
                kind == .yamlConfig || kind == .text
                ? "to train from a config: loom train \(path)" : "name the file loom train --save-weights wrote"
            throw .weights(
                .mismatch(
                    path,
                    "is \(kind.rawValue), not a weights file; this command takes a weights file or checkpoint (\(hint))"
                ))
        }
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
        let decoder = JSONDecoder()
        classNames = read.metadata["class_names"].flatMap { try? decoder.decode([String].self, from: Data($0.utf8)) }
        customLayers = read.metadata["custom_layers"]
        customLoss = read.metadata["custom_loss"]
        scaling = read.metadata["feature_scaling"].flatMap {
            try? decoder.decode(FeatureScaling.self, from: Data($0.utf8))
        }
        if config.data.standardize && scaling?.mean.count != width {
            throw .weights(.mismatch(path, "was trained on standardized data but does not carry its feature scaling"))
        }
    }

    /// A sample standardized as the training data was (unchanged without data.standardize).
    public func prepare(_ sample: [Float]) -> [Float] {
        guard let scaling else { return sample }
        return sample.enumerated().map { j, v in (v - scaling.mean[j]) / scaling.std[j] }
    }

    /// A fresh model of the saved architecture holding the saved weights.
    public func makeModel() throws(LoomError) -> Sequential {
        if let customLayers {
            throw .weights(
                .mismatch(
                    path,
                    "holds custom layers (\(customLayers)) that only their Swift code can rebuild; load it with Model.load(from:layers:)"
                ))
        }
        let model = config.makeModel(inputWidth: inputWidth)
        do { try Checkpoint.load(tensors, into: model, path: path) } catch { throw .weights(error) }
        return model
    }

    /// Loss, accuracy and confusion matrix on a data set's test split (the saved config's data, or `data`);
    /// only the test files are read. Also returns the test set and a name for it ("the mnist test set").
    public func evaluate(data: DataSource?, workers: Int?) throws(LoomError) -> (Evaluation, Dataset, String) {
        let source = data ?? config.data
        var test: Dataset
        do { test = try loadSplit(source, .test) } catch { throw .data(error) }
        if let scaling, source.standardize || data == nil { test = test.standardized(scaling) }
        guard test.features == inputWidth else {
            throw .data(
                .mismatch(
                    source.testImages ?? source.dataset,
                    reason: "test samples have \(test.features) values; the model takes \(inputWidth)"))
        }
        let model = try makeModel()
        try TrainingRun.checkLabels([(test, "test")], model: model, dataset: source.dataset)
        let topology = Topology.detect()
        let n = max(1, min(workers ?? topology.usableCPUs.count, test.count))
        let trainer = Trainer(
            checked: model, optimizer: config.optimizer, placements: topology.placement(workers: n),
            batchSize: max(n, config.training.batchSize), seed: 0)
        let name = source.dataset == "idx" ? "test set \(source.testImages ?? "")" : "\(source.dataset) test set"
        return (trainer.evaluate(test), test, name)
    }

    /// Class probabilities of each sample of `inputs` (rows of `inputWidth` values in [0, 1]).
    public func predict(_ inputs: [[Float]]) throws(LoomError) -> [[Float]] {
        let model = try makeModel()
        let data = Dataset(
            name: "inputs", features: inputWidth, classes: model.outputWidth, values: inputs.flatMap { $0 },
            labels: [Int32](repeating: 0, count: inputs.count))
        let trainer = Trainer(
            checked: model, optimizer: config.optimizer, placements: Topology.detect().placement(workers: 1),
            batchSize: max(1, min(inputs.count, 256)), seed: 0)
        let flat = trainer.predict(data)
        let c = model.outputWidth
        return (0..<inputs.count).map { Array(flat[$0 * c..<($0 + 1) * c]) }
    }
}

/// The samples of a prediction input: an IDX or .npy file (every sample), a PGM or a PNG file.
/// Array files are scaled as training scaled them: by `scale` (data.scale), else bytes by 1/255.
public func readPredictionInputs(_ path: String, features: Int, scale: Double? = nil) throws(LoomError)
    -> [(String, [Float])]
{
    let bytes = FileManager.default.contents(atPath: path).map { [UInt8]($0) } ?? []
    let isArray =
        bytes.count >= 4 && bytes[0] == 0 && bytes[1] == 0 && (8...14).contains(bytes[2])
        || bytes.count >= 2 && bytes[0] == 0x1f && bytes[1] == 0x8b || bytes.starts(with: [0x93, 0x4E, 0x55, 0x4D])
    if isArray {
        let array: NumericArray
        do { array = try readArray(path: path) } catch { throw .data(error) }
        let per = array.featuresPerSample
        guard array.shape.count >= 2 else {
            throw .data(
                .mismatch(
                    path,
                    reason:
                        "holds one value per sample (a label file?), not images; the model takes \(features) values per image"
                ))
        }
        guard per == features else {
            let shape = array.shape.dropFirst().map(String.init).joined(separator: "×")
            throw .data(.mismatch(path, reason: "holds samples of \(shape) values; the model takes \(features)"))
        }
        return (0..<array.shape[0]).map { i in ("\(path)[\(i)]", array.sample(i, scale: scale.map(Float.init))) }
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
