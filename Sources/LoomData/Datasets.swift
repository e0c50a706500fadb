// The datasets Loom knows by name, and IDX image/label pairs by path.
//   mnist          data.path, else data/mnist/ (shipped in the repository; the four original gzip files), looked
//                  for in the working folder, then beside the config file and above it
//   fashion-mnist  data.path, else /usr/share/datasets/fashion-mnist/ (Debian's dataset-fashion-mnist)
//   fizzbuzz       Data Science from Scratch ch. 18/19: n in 101...1023 binary-encoded (10 bits) for training,
//                  1...100 for testing; classes: number, fizz, buzz, fizzbuzz
//   xor            the four XOR points (the test set is the same four points)
//   arrays (idx)   sample and label files by path (.npy or IDX): data.train_x, train_y, test_x, test_y
//   csv            a table: data.train (and data.test, or data.test_split: the last fraction of train), the
//                  class column data.target, feature columns data.features (CSVOptions)
import Foundation

/// Where to find a dataset's files. Paths written in a config file are already resolved against the config's
/// folder by the loader; `searchRoots` are the folders in which a dataset's default folder (`data/mnist`) is
/// looked for when `path` is not set: the working folder first, then the config's folder and its parents.
public struct DataSource: Sendable, Equatable {
    /// The dataset's name: `mnist`, `fashion-mnist`, `fizzbuzz`, `xor`, `idx`, `arrays` or `csv`.
    public var dataset: String
    /// Its folder or file, when not the default.
    public var path: String?
    /// The training samples' file (IDX or .npy; `data.train_x`).
    public var trainImages: String?
    /// The training labels' file (`data.train_y`).
    public var trainLabels: String?
    /// The test samples' file (`data.test_x`).
    public var testImages: String?
    /// The test labels' file (`data.test_y`).
    public var testLabels: String?
    /// The folders in which a default data folder is looked for (see above).
    public var searchRoots: [String]
    /// CSV: how to read the table, and the fraction of the training file's last rows held out as the test set
    /// when there is no test file.
    public var csv = CSVOptions()
    /// The fraction of a CSV training file's last rows held out as the test set, when there is no test file.
    public var testSplit: Double?
    /// Arrays and CSV: every feature value is multiplied by this when loaded (unsigned bytes: instead of 1/255).
    public var scale: Double?
    /// Standardize every feature with the training split's mean and deviation (FeatureScaling).
    public var standardize = false
    /// Read targets as real values (regression; one-hot or soft class probabilities), not class indices. The
    /// config loader sets it for a regression loss (or `data.targets: values`); several target columns (CSV) or
    /// a 2-D target array (N, C) are real values anyway.
    /// `data.targets` as written ("classes" or "values"), nil when left to the loss.
    public var targetsKind: String?
    /// Whether targets are real values (see above).
    public var valueTargets = false {
        didSet { csv.valueTargets = valueTargets }
    }
    /// Arrays: a validation set's sample and label files; CSV: its file in `validationX` (Keras' validation_data).
    public var validationX: String?
    /// Arrays: the validation set's label file.
    public var validationY: String?

    /// A source of a named dataset, optionally with its files.
    public init(
        dataset: String, path: String? = nil, trainImages: String? = nil, trainLabels: String? = nil,
        testImages: String? = nil, testLabels: String? = nil, searchRoots: [String] = []
    ) {
        self.dataset = dataset
        self.path = path
        self.trainImages = trainImages
        self.trainLabels = trainLabels
        self.testImages = testImages
        self.testLabels = testLabels
        self.searchRoots = searchRoots
    }

    /// The dataset names a config accepts.
    public static let known = ["mnist", "fashion-mnist", "fizzbuzz", "xor", "idx", "arrays", "csv"]

    /// The folders above `directory` (itself first), for `searchRoots`.
    public static func ancestors(of directory: String) -> [String] {
        var result: [String] = []
        var url = URL(fileURLWithPath: directory).standardizedFileURL
        while result.last != url.path {
            result.append(url.path)
            url = url.deletingLastPathComponent()
        }
        return result
    }

    /// The folder of a named dataset: `path`, else the first of its default locations that exists.
    func folder(default relative: String) -> String {
        if let path { return path }
        if relative.hasPrefix("/") { return relative }
        for root in [""] + searchRoots {
            let candidate = root.isEmpty ? relative : (root as NSString).appendingPathComponent(relative)
            if FileManager.default.fileExists(atPath: candidate) { return candidate }
        }
        return relative
    }
}

/// The two halves of a data set.
public enum Split: String, Sendable {
    /// The training or the test file.
    case train, test
}

/// Loads the train and test sets a source names.
public func loadDataset(_ source: DataSource) throws(DataError) -> DataSplits {
    var train: Dataset
    var test: Dataset
    if source.dataset == "csv", source.testImages == nil, source.testSplit != nil {
        // Both splits from one table: parse it once.
        (train, test) = try loadCSVSplits(source, scale: source.scale.map(Float.init))
    } else if ["arrays", "idx", "csv"].contains(source.dataset) && source.testImages == nil
        && source.testLabels == nil
    {
        train = try loadSplit(source, .train)  // training data only (read once): no test evaluation
        test = noTestSet(features: train.features)
    } else {
        train = try loadSplit(source, .train)
        test = try loadSplit(source, .test)
    }
    var validation = try loadValidation(source)
    if let v = validation, v.features != train.features {
        throw .mismatch(
            source.validationX ?? "data",
            reason: "validation samples have \(v.features) values, training samples \(train.features)")
    }
    var scaling: FeatureScaling?
    if source.standardize {
        let s = train.featureStatistics()
        (train, test, scaling) = (train.standardized(s), test.standardized(s), s)
        validation = validation?.standardized(s)
    }
    guard train.features == test.features else {
        throw .mismatch(
            source.testImages ?? source.dataset,
            reason: "test samples have \(test.features) values, training samples \(train.features)")
    }
    return DataSplits(train: train, test: test, scaling: scaling, validation: validation)
}

/// The validation files a source names, if any.
func loadValidation(_ source: DataSource) throws(DataError) -> Dataset? {
    guard let x = source.validationX else { return nil }
    let hint = "set data.validation%@ to the file's path (relative to the config file, or absolute)"
    if source.dataset == "csv" {
        return try dataset(
            readCSV(path: x, options: source.csv, hint: String(format: hint, "")), "validation",
            scale: source.scale.map(Float.init))
    }
    guard let y = source.validationY else {
        throw .mismatch("data", reason: "data.validation_x needs data.validation_y (the labels)")
    }
    return try loadIDX(
        images: x, labels: y, name: "validation", hints: (String(format: hint, "_x"), String(format: hint, "_y")),
        scale: source.scale.map(Float.init), valueTargets: source.valueTargets)
}

/// An empty test set: the run has no test evaluation.
func noTestSet(features: Int) -> Dataset {
    Dataset(name: "test", features: features, classes: 2, values: [], labels: [])
}

/// Loads one split of a source (`loom evaluate` needs only the test files).
public func loadSplit(_ source: DataSource, _ split: Split) throws(DataError) -> Dataset {
    switch source.dataset {
    case "mnist":
        return try loadIDXFolder(
            source.folder(default: "data/mnist"), split, name: "mnist",
            hint: "MNIST ships in the repository's data/mnist/; set data.path to the folder holding its four files")
    case "fashion-mnist":
        return try loadIDXFolder(
            source.folder(default: "/usr/share/datasets/fashion-mnist"), split, name: "fashion-mnist",
            hint: "install it with `apt-get install dataset-fashion-mnist`, or set data.path to its folder")
    case "fizzbuzz": return split == .train ? fizzBuzz().train : fizzBuzz().test
    case "xor": return xor().train
    case "csv":
        return try loadCSVSplit(source, split, scale: source.scale.map(Float.init))
    case "idx", "arrays":
        let (imagesKey, labelsKey) = ("\(split)_images", "\(split)_labels")
        let (images, labels) =
            split == .train ? (source.trainImages, source.trainLabels) : (source.testImages, source.testLabels)

        guard let images else { throw .mismatch("data", reason: "dataset '\(source.dataset)' needs data.\(imagesKey)") }
        guard let labels else { throw .mismatch("data", reason: "dataset '\(source.dataset)' needs data.\(labelsKey)") }
        let hint = "set data.%@ to the file's path (relative to the config file, or absolute)"
        return try loadIDX(
            images: images, labels: labels, name: "\(split)",
            hints: (String(format: hint, imagesKey), String(format: hint, labelsKey)),
            scale: source.scale.map(Float.init), valueTargets: source.valueTargets)
    default: throw .unknownDataset(source.dataset, known: DataSource.known)
    }
}

/// One split of the four MNIST-named files of a folder (gzip or raw).
func loadIDXFolder(_ directory: String, _ split: Split, name: String, hint: String) throws(DataError) -> Dataset {
    func file(_ base: String) throws(DataError) -> String {
        let gz = (directory as NSString).appendingPathComponent(base + ".gz")
        if FileManager.default.fileExists(atPath: gz) { return gz }
        let plain = (directory as NSString).appendingPathComponent(base)
        if FileManager.default.fileExists(atPath: plain) { return plain }
        throw .missingFile(gz, hint: hint)
    }
    let prefix = split == .train ? "train" : "t10k"
    return try loadIDX(
        images: file("\(prefix)-images-idx3-ubyte"), labels: file("\(prefix)-labels-idx1-ubyte"), name: name,
        hints: (hint, hint))
}

/// A sample file (N × rows × cols, or N × features) and its label file (N), each IDX of any type or .npy,
/// checked against each other; `hints` say which key to change when either file is missing. Unsigned-byte
/// samples are pixels (kept as bytes, scaled to [0, 1] when gathered); other types are read as floats, which
/// must be finite. Labels are class indices of any width (more than 256 classes are fine).
public func loadIDX(
    images: String, labels: String, name: String, hints: (images: String, labels: String) = ("", ""),
    scale: Float? = nil, valueTargets: Bool = false
) throws(DataError) -> Dataset {
    let x = try readArray(path: images, hint: hints.images)
    let y = try readArray(path: labels, hint: hints.labels)
    guard x.shape.count >= 2 else {
        throw .mismatch(
            images,
            reason:
                "expected samples (2 or more dimensions: count × features, or count × rows × columns), found \(x.shape.count) dimension(s)"
        )
    }
    // Targets: class indices, or real values (asked for, or one-hot / soft rows of several values).
    let values = valueTargets || (y.shape.count == 2 && y.shape[1] > 1)
    let targets = values ? try y.valueTargets(path: labels) : nil
    let labelValues = targets == nil ? try y.classLabels(path: labels) : [Int32](repeating: 0, count: y.shape[0])
    guard x.shape[0] == labelValues.count else {
        throw .mismatch(labels, reason: "holds \(labelValues.count) labels but \(images) holds \(x.shape[0]) samples")
    }
    guard x.shape[0] > 0 else { throw .mismatch(images, reason: "holds no samples") }
    if let (sample, feature) = x.firstNonFinite() {
        throw .mismatch(
            images,
            reason: "sample \(sample), value \(feature) is not a finite number; fill or drop missing values first")
    }
    let features = x.featuresPerSample
    let classes = max(Int(labelValues.max() ?? 0) + 1, 2)
    let set: Dataset
    switch x.values {
    case .bytes(let b):
        set = Dataset(
            name: name, features: features, classes: classes, bytes: b, labels: labelValues, scale: scale ?? 1 / 255)
    case .integers(let v):
        set = Dataset(
            name: name, features: features, classes: classes, values: v.map { Float($0) * (scale ?? 1) },
            labels: labelValues)
    case .floats(let v):
        set = Dataset(
            name: name, features: features, classes: classes, values: scale.map { s in v.map { $0 * s } } ?? v,
            labels: labelValues)
    }
    return targets.map { set.withTargets($0.values, width: $0.width) } ?? set
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

/// One split of a CSV source: its own file, or the last `testSplit` of the training file (the test split) and
/// the rows before it (the training split).
func loadCSVSplit(_ source: DataSource, _ split: Split, scale: Float?) throws(DataError) -> Dataset {
    guard source.trainImages != nil else {
        throw .mismatch("data", reason: "dataset 'csv' needs data.train (a CSV file)")
    }
    let hint = "set data.%@ to the file's path (relative to the config file, or absolute)"
    if split == .test, let testPath = source.testImages {
        return try dataset(
            readCSV(path: testPath, options: source.csv, hint: String(format: hint, "test")), "test", scale: scale)
    }
    if source.testImages == nil && source.testSplit == nil {  // training data only: no test evaluation
        let train = try loadCSVSplits(source, scale: scale).train
        return split == .train ? train : noTestSet(features: train.features)
    }
    if source.testImages != nil { return try loadCSVSplits(source, scale: scale).train }
    let (train, test) = try loadCSVSplits(source, scale: scale)
    return split == .train ? train : test
}

/// The training file, whole (with a test file) or cut by `testSplit` into the training rows and the last
/// fraction (the test split), from one parse.
func loadCSVSplits(_ source: DataSource, scale: Float?) throws(DataError) -> (train: Dataset, test: Dataset) {
    let trainPath = source.trainImages ?? ""
    let hint = "set data.train to the file's path (relative to the config file, or absolute)"
    let all = try dataset(readCSV(path: trainPath, options: source.csv, hint: hint), "train", scale: scale)
    guard let fraction = source.testSplit, source.testImages == nil else { return (all, all) }
    let held = Int((Double(all.count) * fraction).rounded(.down))
    guard held > 0 && held < all.count else {
        throw .mismatch(
            trainPath, reason: "data.test_split \(fraction) of \(all.count) rows leaves no test or no training rows")
    }
    return (all.subset(0..<all.count - held), all.subset(all.count - held..<all.count, name: "test"))
}

func dataset(_ table: CSVTable, _ name: String, scale: Float?) -> Dataset {
    let classes = max(table.classNames?.count ?? 0, Int(table.labels.max() ?? 0) + 1, 2)
    if let scale {
        for i in 0..<table.labels.count * table.features { table.values.pointer[i] *= scale }
    }
    var set = Dataset(
        name: name, features: table.features, classes: classes, floats: table.values, labels: table.labels
    )
    .naming(table.classNames)
    if table.targetWidth > 0 { set = set.withTargets(table.targets, width: table.targetWidth) }
    if let weights = table.weights { set = set.weighted(weights) }
    return set
}
