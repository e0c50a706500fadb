import Foundation
import LoomTestSupport
import Testing

/// A C-order little-endian .npy file of float32 (`f4`) or int64 (`i8`) values.
func npy(_ descr: String, shape: [Int], _ payload: [UInt8]) -> Data {
    let shapeText = shape.count == 1 ? "(\(shape[0]),)" : "(" + shape.map(String.init).joined(separator: ", ") + ")"
    var header = "{'descr': '\(descr)', 'fortran_order': False, 'shape': \(shapeText), }"
    while (10 + header.utf8.count + 1) % 64 != 0 { header += " " }
    header += "\n"
    let n = header.utf8.count
    return Data([0x93] + Array("NUMPY".utf8) + [1, 0, UInt8(n & 255), UInt8(n >> 8)] + Array(header.utf8) + payload)
}

/// Three classes of points in the plane around three centres (a fixed pseudo-random sequence).
func blobs(_ n: Int, seed: UInt64) -> (x: [Float], y: [Int64]) {
    var state = seed
    func uniform() -> Float {
        state = state &* 6_364_136_223_846_793_005 &+ 1_442_695_040_888_963_407
        return Float(state >> 40) / Float(1 << 24)
    }
    let centres: [(Float, Float)] = [(0, 0), (3, 0), (0, 3)]
    var x: [Float] = []
    var y: [Int64] = []
    for i in 0..<n {
        let c = i % 3
        x += [centres[c].0 + 2 * uniform() - 1, centres[c].1 + 2 * uniform() - 1, uniform()]
        y.append(Int64(c))
    }
    return (x, y)
}

@Suite("Bring your own arrays: .npy and IDX files of any type")
struct ArrayDataTests {
    @Test("a float32 .npy with int64 labels trains to > 0.9 test accuracy, the same digest for 1, 2 and 3 workers")
    func trainsOnNumPyArrays() throws {
        let dir = temporaryFolder("loom-cli")
        let (trainX, trainY) = blobs(600, seed: 1)
        let (testX, testY) = blobs(150, seed: 2)
        func bytes<T>(_ xs: [T]) -> [UInt8] { xs.withUnsafeBytes { Array($0) } }
        try npy("<f4", shape: [600, 3], bytes(trainX)).write(to: URL(fileURLWithPath: dir + "/x.npy"))
        try npy("<i8", shape: [600], bytes(trainY)).write(to: URL(fileURLWithPath: dir + "/y.npy"))
        try npy("<f4", shape: [150, 3], bytes(testX)).write(to: URL(fileURLWithPath: dir + "/tx.npy"))
        try npy("<i8", shape: [150], bytes(testY)).write(to: URL(fileURLWithPath: dir + "/ty.npy"))
        let config = """
            model:
              layers:
                - {type: dense, units: 16, activation: relu}
                - {type: dense, units: 3, activation: softmax}
            loss: sparse_categorical_crossentropy
            optimizer: {name: adam, learning_rate: 0.01}
            data: {dataset: arrays, train_x: x.npy, train_y: y.npy, test_x: tx.npy, test_y: ty.npy}
            training: {epochs: 20, batch_size: 32}
            """
        try config.write(toFile: dir + "/c.yaml", atomically: true, encoding: .utf8)
        var digests: [Substring] = []
        for workers in ["1", "2", "3"] {
            let o = try loom(["train", dir + "/c.yaml", "--workers", workers, "-q"])
            #expect(o.status == 0, "\(o.stderr)")
            if let line = o.stdout.split(separator: "\n").first(where: { $0.hasPrefix("test_loss") }),
                let accuracy = Double(line.split(separator: " ")[4])
            {
                #expect(accuracy > 0.9, "\(line)")
            } else {
                Issue.record("no test line: \(o.stdout)")
            }
            digests.append(digest(o) ?? "")
        }
        #expect(Set(digests).count == 1 && !digests[0].isEmpty)
        // A validation file of its own (Keras' validation_data), and no test set: no test evaluation.
        let trainOnly = config.replacingOccurrences(
            of: "test_x: tx.npy, test_y: ty.npy", with: "validation_x: tx.npy, validation_y: ty.npy")
        try trainOnly.write(toFile: dir + "/v.yaml", atomically: true, encoding: .utf8)
        let v = try loom(["train", dir + "/v.yaml", "--verbosity", "2", "--epochs", "2"])
        #expect(v.status == 0 && v.stdout.contains("val_accuracy: ") && !v.stdout.contains("test_loss"), "\(v.stdout)")
        expectOneLineError(
            try loom(["train", dir + "/v.yaml", "--set", "training.validation_split=0.1"]),
            ["validation_split", "keep one"])
        // A missing file names the key to set; a NaN names the sample.
        expectOneLineError(try loom(["train", dir + "/c.yaml", "--set", "data.train_x=nope.npy"]), ["nope.npy"])
        var withNaN = trainX
        withNaN[4] = .nan
        try npy("<f4", shape: [600, 3], bytes(withNaN)).write(to: URL(fileURLWithPath: dir + "/nan.npy"))
        expectOneLineError(
            try loom(["train", dir + "/c.yaml", "--set", "data.train_x=\(dir)/nan.npy"]),
            ["sample 1, value 1 is not a finite number"])
    }
}

/// configs/digits.yaml reads a file of Debian's python3-sklearn (CI installs it).
let digitsFile = "/usr/lib/python3/dist-packages/sklearn/datasets/data/digits.csv.gz"

@Suite("The shipped CSV examples")
struct DigitsConfigTests {
    /// Trains a shipped config on 1, 2 and 3 workers: its test set size and accuracy (or, for regression, that
    /// the mean absolute error is at most `mae`), and one digest.
    func trainsAlike(_ config: String, samples: Int, accuracy: Double = 0, mae: Double? = nil) throws {
        var digests: [Substring] = []
        for workers in ["1", "2", "3"] {
            let o = try loom(["train", config, "--workers", workers, "-q"])
            #expect(o.status == 0, "\(o.stderr)")
            let line = o.stdout.split(separator: "\n").first { $0.hasPrefix("test_loss") } ?? ""
            #expect(line.contains("(\(samples) samples)"), "\(line)")
            // "test_loss: 0.05 - test_accuracy: 0.98 (…)" or "test_loss: 40.1 - test_mae: 5.2 - test_rmse: …".
            let metric = Double(line.split(separator: " ").dropFirst(4).first ?? "") ?? .nan
            if let mae {
                #expect(line.contains("test_mae") && metric <= mae, "\(line)")
            } else {
                #expect(metric >= accuracy, "\(line)")
            }
            digests.append(digest(o) ?? "")
        }
        #expect(Set(digests).count == 1 && !digests[0].isEmpty)
    }

    @Test(
        "configs/digits.yaml: scikit-learn's reference accuracy (≥ 0.91), the same digest for 1, 2 and 3 workers",
        .enabled(if: FileManager.default.fileExists(atPath: digitsFile), "needs python3-sklearn's digits.csv.gz"))
    func digits() throws { try trainsAlike("configs/digits.yaml", samples: 449, accuracy: 0.91) }

    @Test(
        "configs/breast-cancer.yaml (binary_crossentropy, standardized): ≥ 0.96, the same digest for 1, 2 and 3 workers",
        .enabled(if: FileManager.default.fileExists(atPath: digitsFile), "needs python3-sklearn's data files"))
    func breastCancer() throws { try trainsAlike("configs/breast-cancer.yaml", samples: 142, accuracy: 0.96) }

    @Test(
        "configs/boston-housing.yaml (regression, mean_squared_error): test MAE ≤ 7, the same digest for 1, 2, 3 workers",
        .enabled(if: FileManager.default.fileExists(atPath: digitsFile), "needs python3-sklearn's data files"))
    func bostonHousing() throws { try trainsAlike("configs/boston-housing.yaml", samples: 126, mae: 7) }
}

@Suite("CSV with class names and standardized features")
struct CSVNamesTests {
    @Test("a text class column: predict prints the names; standardization is saved, evaluate and predict apply it")
    func namesAndScaling() throws {
        let dir = temporaryFolder("loom-cli")
        let (x, y) = blobs(300, seed: 3)
        let names = ["circle", "square", "triangle"]
        var csv = "a,b,c,shape\n"
        for i in 0..<300 {
            // Features far from 0 and on different scales: only standardization makes them comparable.
            csv += "\(1000 + 100 * x[3 * i]),\(x[3 * i + 1] / 100),\(x[3 * i + 2]),\"\(names[Int(y[i])])\"\n"
        }
        try csv.write(toFile: dir + "/t.csv", atomically: true, encoding: .utf8)
        let config = """
            model:
              layers:
                - {type: dense, units: 16, activation: relu}
                - {type: dense, units: 3, activation: softmax}
            loss: sparse_categorical_crossentropy
            optimizer: {name: adam, learning_rate: 0.01}
            data: {dataset: csv, train: t.csv, test_split: 0.2, target: shape, standardize: true}
            training: {epochs: 30, batch_size: 16}
            """
        try config.write(toFile: dir + "/c.yaml", atomically: true, encoding: .utf8)
        let trained = try loom(["train", dir + "/c.yaml", "-q", "--save-weights", dir + "/w.safetensors"])
        #expect(trained.status == 0, "\(trained.stderr)")
        let testLine = trained.stdout.split(separator: "\n").first { $0.hasPrefix("test_loss") } ?? ""
        let loss = testLine.split(separator: " ").dropFirst().first ?? ""
        #expect((Double(testLine.split(separator: " ").dropFirst(4).first ?? "") ?? 0) > 0.9, "\(testLine)")
        // evaluate applies the saved statistics: the same test loss.
        let evaluated = try loom(["evaluate", dir + "/w.safetensors"])
        #expect(evaluated.stdout.contains("loss \(loss)"), "\(evaluated.stdout) vs \(testLine)")
        // predict on raw (unstandardized) rows of a .npy: the class names, the right ones.
        var rows: [Float] = []
        for i in 0..<3 { rows += [1000 + 100 * x[3 * i], x[3 * i + 1] / 100, x[3 * i + 2]] }
        try npy("<f4", shape: [3, 3], rows.withUnsafeBytes { Array($0) }).write(
            to: URL(fileURLWithPath: dir + "/p.npy"))
        let predicted = try loom(["predict", dir + "/w.safetensors", dir + "/p.npy", "--top", "1"])
        let lines = predicted.stdout.split(separator: "\n")
        #expect(lines.count == 3, "\(predicted.stdout)\(predicted.stderr)")
        for (i, line) in lines.enumerated() { #expect(line.contains(": \(names[Int(y[i])]) \(y[i]) ("), "\(line)") }
    }
}
