// The datasets Loom knows by name, and IDX image/label pairs by path.
//   mnist          data/mnist/ (shipped in the repository; the four original gzip files)
//   fashion-mnist  data.path, else /usr/share/datasets/fashion-mnist/ (Debian's dataset-fashion-mnist)
//   fizzbuzz       Data Science from Scratch ch. 18/19: n in 101...1023 binary-encoded (10 bits) for training,
//                  1...100 for testing; classes: number, fizz, buzz, fizzbuzz
//   xor            the four XOR points (the test set is the same four points)
//   idx            any pair: data.train_images, data.train_labels, data.test_images, data.test_labels
import Foundation

/// Where to find a dataset's files.
public struct DataSource: Sendable, Equatable {
    public var dataset: String
    public var path: String?
    public var trainImages: String?
    public var trainLabels: String?
    public var testImages: String?
    public var testLabels: String?

    public init(
        dataset: String, path: String? = nil, trainImages: String? = nil, trainLabels: String? = nil,
        testImages: String? = nil, testLabels: String? = nil
    ) {
        self.dataset = dataset
        self.path = path
        self.trainImages = trainImages
        self.trainLabels = trainLabels
        self.testImages = testImages
        self.testLabels = testLabels
    }

    public static let known = ["mnist", "fashion-mnist", "fizzbuzz", "xor", "idx"]
}

/// Loads the train and test sets a source names.
public func loadDataset(_ source: DataSource) throws(DataError) -> DataSplits {
    switch source.dataset {
    case "mnist":
        return try loadIDXPair(
            directory: source.path ?? "data/mnist", name: "mnist",
            hint: "MNIST ships in the repository's data/mnist/; run loom from the repository root.")
    case "fashion-mnist":
        return try loadIDXPair(
            directory: source.path ?? "/usr/share/datasets/fashion-mnist", name: "fashion-mnist",
            hint: "Install it with `apt-get install dataset-fashion-mnist`, or set data.path.")
    case "fizzbuzz": return fizzBuzz()
    case "xor": return xor()
    case "idx":
        func need(_ v: String?, _ key: String) throws(DataError) -> String {
            guard let v else { throw .mismatch("data", reason: "dataset 'idx' needs data.\(key)") }
            return v
        }
        let train = try loadIDX(
            images: need(source.trainImages, "train_images"),
            labels: need(source.trainLabels, "train_labels"), name: "train")
        let test = try loadIDX(
            images: need(source.testImages, "test_images"),
            labels: need(source.testLabels, "test_labels"), name: "test")
        guard train.features == test.features else {
            throw .mismatch(
                source.testImages!,
                reason: "test images have \(test.features) values per sample, training images \(train.features)")
        }
        return DataSplits(train: train, test: test)
    default: throw .unknownDataset(source.dataset, known: DataSource.known)
    }
}

/// The four MNIST-named files of a directory (gzip or raw).
func loadIDXPair(directory: String, name: String, hint: String) throws(DataError) -> DataSplits {
    func file(_ base: String) throws(DataError) -> String {
        let gz = (directory as NSString).appendingPathComponent(base + ".gz")
        if FileManager.default.fileExists(atPath: gz) { return gz }
        let plain = (directory as NSString).appendingPathComponent(base)
        if FileManager.default.fileExists(atPath: plain) { return plain }
        throw .missingFile(gz, hint: hint)
    }
    let train = try loadIDX(
        images: file("train-images-idx3-ubyte"), labels: file("train-labels-idx1-ubyte"), name: name)
    let test = try loadIDX(images: file("t10k-images-idx3-ubyte"), labels: file("t10k-labels-idx1-ubyte"), name: name)
    return DataSplits(train: train, test: test)
}

/// An image file (N × rows × cols, or N × features) and its label file (N), checked against each other.
public func loadIDX(images: String, labels: String, name: String) throws(DataError) -> Dataset {
    let x = try readIDX(path: images)
    let y = try readIDX(path: labels)
    guard x.dimensions.count >= 2 else {
        throw .mismatch(
            images,
            reason:
                "expected an image file (3 dimensions: count × rows × columns), found \(x.dimensions.count) dimension(s)"
        )
    }
    guard y.dimensions.count == 1 else {
        throw .mismatch(labels, reason: "expected a label file (1 dimension), found \(y.dimensions.count) dimensions")
    }
    guard x.dimensions[0] == y.dimensions[0] else {
        throw .mismatch(labels, reason: "holds \(y.dimensions[0]) labels but \(images) holds \(x.dimensions[0]) images")
    }
    guard x.dimensions[0] > 0 else { throw .mismatch(images, reason: "holds no samples") }
    let features = x.dimensions.dropFirst().reduce(1, *)
    let labelValues = y.bytes.map { Int32($0) }
    let classes = Int(labelValues.max() ?? 0) + 1
    return Dataset(name: name, features: features, classes: max(classes, 2), bytes: x.bytes, labels: labelValues)
}

/// FizzBuzz as Data Science from Scratch sets it up.
public func fizzBuzz() -> DataSplits {
    func encode(_ n: Int) -> [Float] { (0..<10).map { Float((n >> $0) & 1) } }
    func label(_ n: Int) -> Int32 { n % 15 == 0 ? 3 : n % 5 == 0 ? 2 : n % 3 == 0 ? 1 : 0 }
    func make(_ r: ClosedRange<Int>, _ name: String) -> Dataset {
        Dataset(name: name, features: 10, classes: 4, values: r.flatMap(encode), labels: r.map(label))
    }
    return DataSplits(train: make(101...1023, "fizzbuzz"), test: make(1...100, "fizzbuzz"))
}

/// The XOR truth table.
public func xor() -> DataSplits {
    let x: [Float] = [0, 0, 0, 1, 1, 0, 1, 1]
    let y: [Int32] = [0, 1, 1, 0]
    let d = Dataset(name: "xor", features: 2, classes: 2, values: x, labels: y)
    return DataSplits(train: d, test: d)
}
