import Foundation
import LoomData
import LoomTestSupport
import Testing

let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
    .deletingLastPathComponent().path

/// The `loom` binary built beside the test bundle.
let loomBinary: String = {
    let dir = URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent()
    for candidate in [dir, dir.deletingLastPathComponent()] {
        let path = candidate.appendingPathComponent("loom").path
        if FileManager.default.isExecutableFile(atPath: path) { return path }
    }
    return Bundle.main.bundleURL.appendingPathComponent("loom").path
}()

struct Outcome {
    var status: Int32
    var stdout: String
    var stderr: String
}

func loom(_ args: [String], cwd: String = root) throws -> Outcome {
    let p = Process()
    p.executableURL = URL(fileURLWithPath: loomBinary)
    p.arguments = args
    p.currentDirectoryURL = URL(fileURLWithPath: cwd)
    let out = Pipe()
    let err = Pipe()
    p.standardOutput = out
    p.standardError = err
    try p.run()
    let o = out.fileHandleForReading.readDataToEndOfFile()
    let e = err.fileHandleForReading.readDataToEndOfFile()
    p.waitUntilExit()
    return Outcome(
        status: p.terminationStatus, stdout: String(decoding: o, as: UTF8.self),
        stderr: String(decoding: e, as: UTF8.self))
}

func idx(_ dims: [Int], _ data: [UInt8], magic: UInt8 = 8) -> Data {
    var out: [UInt8] = [0, 0, magic, UInt8(dims.count)]
    for d in dims { out += [UInt8(d >> 24 & 255), UInt8(d >> 16 & 255), UInt8(d >> 8 & 255), UInt8(d & 255)] }
    return Data(out + data)
}

/// A config training a tiny model on an IDX pair in `dir`.
func idxConfig(_ dir: String, extra: String = "") -> String {
    let text = """
        model:
          layers:
            - {type: dense, units: 8, activation: relu}
            - {type: dense, units: 3, activation: softmax}
        loss: sparse_categorical_crossentropy
        optimizer: {name: sgd, learning_rate: 0.1}
        data:
          dataset: idx
          train_images: \(dir)/train-images
          train_labels: \(dir)/train-labels
          test_images: \(dir)/test-images
          test_labels: \(dir)/test-labels
        training: {epochs: 2, batch_size: 4\(extra)}
        """
    let path = dir + "/c.yaml"
    _ = FileManager.default.createFile(atPath: path, contents: Data(text.utf8))
    return path
}

func writeGoodIDX(_ dir: String) {
    let fm = FileManager.default
    _ = fm.createFile(atPath: dir + "/train-images", contents: idx([12, 2, 2], (0..<48).map { UInt8($0 * 5) }))
    _ = fm.createFile(atPath: dir + "/train-labels", contents: idx([12], (0..<12).map { UInt8($0 % 3) }))
    _ = fm.createFile(atPath: dir + "/test-images", contents: idx([3, 2, 2], (0..<12).map { UInt8($0 * 7) }))
    _ = fm.createFile(atPath: dir + "/test-labels", contents: idx([3], [0, 1, 2]))
}

/// A user error: exit code ≠ 0, exactly one line on stderr that contains each of `mentions`, no crash.
func expectOneLineError(_ o: Outcome, _ mentions: [String], sourceLocation: SourceLocation = #_sourceLocation) {
    #expect(o.status != 0, "exit status \(o.status)", sourceLocation: sourceLocation)
    #expect(o.status < 128, "killed by a signal: \(o.stderr)", sourceLocation: sourceLocation)
    let lines = o.stderr.split(separator: "\n")
    #expect(lines.count == 1, "stderr: \(o.stderr)", sourceLocation: sourceLocation)
    for m in mentions { #expect(o.stderr.contains(m), "'\(m)' not in: \(o.stderr)", sourceLocation: sourceLocation) }
    #expect(!o.stderr.contains("Fatal error") && !o.stderr.contains("Stack dump"), sourceLocation: sourceLocation)
}

@Suite("The loom command", .serialized)
struct CLITests {
    @Test("trains a tiny model and writes a JSON report with the promised fields")
    func trainAndReport() throws {
        let dir = temporaryFolder("loom-cli")
        writeGoodIDX(dir)
        let o = try loom(["train", idxConfig(dir), "--workers", "2", "--report", dir + "/r.json"])
        #expect(o.status == 0, "\(o.stderr)")
        #expect(o.stdout.contains("Epoch 2/2") && o.stdout.contains("3/3 ") && o.stdout.contains("weights_digest: "))
        let report =
            try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: dir + "/r.json")))
            as! [String: Any]
        for key in [
            "test_accuracy", "test_loss", "epochs", "steps", "train_seconds", "samples_per_second", "workers",
            "weights_digest",
        ] {
            #expect(report[key] != nil, "report lacks \(key)")
        }
        #expect(report["workers"] as? Int == 2 && report["steps"] as? Int == 6)
        #expect(o.stdout.contains(report["weights_digest"] as! String))
    }

    @Test("missing config file")
    func missingConfig() throws {
        expectOneLineError(try loom(["train", "configs/nope.yaml"]), ["configs/nope.yaml", "no such config file"])
    }

    @Test("YAML syntax error, unknown key, wrong type, negative batch size: file, line and key")
    func badConfigs() throws {
        let dir = temporaryFolder("loom-cli")
        writeGoodIDX(dir)
        let path = idxConfig(dir)
        let text = try String(contentsOfFile: path, encoding: .utf8)
        for (broken, mentions) in [
            (text.replacingOccurrences(of: "epochs: 2,", with: "epochs: [2,"), ["bad.yaml:", "YAML syntax error"]),
            (
                text.replacingOccurrences(of: "epochs: 2", with: "epoch: 2"),
                ["bad.yaml:13:", "training.epoch", "did you mean 'epochs'"]
            ),
            (
                text.replacingOccurrences(of: "units: 8", with: "units: eight"),
                ["bad.yaml:3:", "model.layers.0.units", "'eight'"]
            ),
            (
                text.replacingOccurrences(of: "batch_size: 4", with: "batch_size: -4"),
                ["bad.yaml:13:", "training.batch_size", "-4"]
            ),
        ] {
            _ = FileManager.default.createFile(atPath: dir + "/bad.yaml", contents: Data(broken.utf8))
            let o = try loom(["train", dir + "/bad.yaml"])
            expectOneLineError(o, mentions)
            #expect(o.status == 2)
        }
        expectOneLineError(try loom(["train", path, "--batch-size", "-1"]), ["training.batch_size", "-1"])
        expectOneLineError(
            try loom(["train", path, "--set", "training.epohcs=1"]), ["--set", "did you mean 'epochs'"])
    }

    @Test("missing data file, wrong magic, truncated IDX, image and label counts that disagree")
    func badData() throws {
        let fm = FileManager.default
        for (name, damage, mentions) in [
            (
                "missing", { (d: String) in try? fm.removeItem(atPath: d + "/train-images") },
                ["train-images", "no such file"]
            ),
            (
                "magic",
                { (d: String) in
                    _ = fm.createFile(
                        atPath: d + "/train-images",
                        contents: idx([12, 2, 2], [UInt8](repeating: 0, count: 48), magic: 0x0A))
                }, ["train-images", "magic number"]
            ),
            (
                "truncated",
                { (d: String) in
                    _ = fm.createFile(atPath: d + "/test-labels", contents: idx([3], [0, 1, 2]).prefix(10))
                },
                ["test-labels", "truncated"]
            ),
            (
                "counts",
                { (d: String) in
                    _ = fm.createFile(
                        atPath: d + "/train-labels", contents: idx([11], [UInt8](repeating: 0, count: 11)))
                }, ["train-labels", "11 labels", "12 samples"]
            ),
            (
                "labels",
                { (d: String) in
                    _ = fm.createFile(
                        atPath: d + "/train-labels", contents: idx([12], [UInt8](repeating: 7, count: 12)))
                }, ["has label 7", "3 outputs", "at least 8"]
            ),
        ] as [(String, (String) -> Void, [String])] {
            let dir = temporaryFolder("loom-cli")
            writeGoodIDX(dir)
            damage(dir)
            let o = try loom(["train", idxConfig(dir), "--report", dir + "/r.json"])
            expectOneLineError(o, mentions)
            #expect(!fm.fileExists(atPath: dir + "/r.json"), "\(name): a report was written")
        }
    }

    @Test("impossible worker counts are errors; more workers than CPUs is a warning")
    func workers() throws {
        let dir = temporaryFolder("loom-cli")
        writeGoodIDX(dir)
        let path = idxConfig(dir)
        expectOneLineError(try loom(["train", path, "--workers", "0"]), ["--workers 0"])
        expectOneLineError(try loom(["train", path, "--workers", "-2"]), ["-2"])
        expectOneLineError(try loom(["train", path, "--workers", "5"]), ["--workers 5", "batch size 4"])
        let cpus = ProcessInfo.processInfo.activeProcessorCount
        if cpus < 4 {
            let o = try loom(["train", path, "--workers", "4"])
            #expect(o.status == 0)
            #expect(o.stderr.split(separator: "\n").count == 1 && o.stderr.contains("oversubscribed"))
        }
    }

    @Test("bench step and bench scaling print their tables and write their files")
    func benchCommands() throws {
        let dir = temporaryFolder("loom-cli")
        writeGoodIDX(dir)
        let step = try loom([
            "bench", "step", idxConfig(dir), "--steps", "2", "--rounds", "2", "--json", dir + "/step.json",
        ])
        #expect(step.status == 0, "\(step.stderr)")
        #expect(step.stdout.contains("training step, 1 worker:") && step.stdout.contains("% of the GEMM rate"))
        let rows =
            try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: dir + "/step.json")))
            as! [[String: Any]]
        #expect(rows.count == 1 && (rows[0]["ratio"] as? Double ?? 0) > 0 && rows[0]["gemm_name"] as? String == "4×8×4")
        // 2·4·(4·8)·2 + 3·2·4·(8·3): the first layer has no input gradient.
        #expect(rows[0]["flops_per_step"] as? Double == 1088)
        let scaling = try loom([
            "bench", "scaling", idxConfig(dir), "--workers", "1,2", "--steps", "2", "--repeats", "1",
            "--out", dir + "/out",
        ])
        #expect(scaling.status == 0, "\(scaling.stderr)")
        for file in ["scaling.csv", "scaling.json", "scaling.svg"] {
            #expect(FileManager.default.fileExists(atPath: dir + "/out/" + file), "\(file) missing")
        }
        expectOneLineError(try loom(["bench", "step", idxConfig(dir), "--rounds", "0"]), ["--rounds 0"])
    }

    @Test("summary and topology")
    func summaryAndTopology() throws {
        let s = try loom(["summary", "configs/mnist.yaml"])
        #expect(s.status == 0 && s.stdout.contains("407,050"))
        let t = try loom(["topology", "--workers", "2"])
        #expect(t.status == 0 && t.stdout.contains("worker 0 → CPU") && t.stdout.contains("node 0"))
    }
}

/// A config on a 4000-sample IDX set (1000 steps an epoch at batch 4), so a run lasts long enough to be
/// interrupted, with a checkpoint section.
func longConfig(_ dir: String, epochs: Int = 3, units: Int = 64, checkpoint: String? = nil) throws -> String {
    writeGoodIDX(dir)
    let fm = FileManager.default
    _ = fm.createFile(atPath: dir + "/train-images", contents: idx([4000, 2, 2], (0..<16000).map { UInt8($0 % 251) }))
    _ = fm.createFile(atPath: dir + "/train-labels", contents: idx([4000], (0..<4000).map { UInt8($0 % 3) }))
    let path = idxConfig(dir)
    var text = try String(contentsOfFile: path, encoding: .utf8)
    text = text.replacingOccurrences(of: "units: 8", with: "units: \(units)").replacingOccurrences(
        of: "epochs: 2", with: "epochs: \(epochs)")
    text += "\ncheckpoint: \(checkpoint ?? "{dir: \(dir)/ckpt}")\n"
    try text.write(toFile: path, atomically: true, encoding: .utf8)
    return path
}

@Suite("Checkpoint files under SIGKILL", .serialized)
struct KillTests {
    @Test("killing the trainer at random moments (mid-write included) always leaves the newest checkpoint loadable")
    func killDuringCheckpoints() throws {
        let dir = temporaryFolder("loom-cli")
        let fm = FileManager.default
        let config = try longConfig(
            dir, epochs: 1000, units: 256, checkpoint: "{dir: \(dir)/ckpt, every_steps: 1, keep: 2}")
        var loaded = 0
        for round in 0..<12 {
            let p = Process()
            p.executableURL = URL(fileURLWithPath: loomBinary)
            p.arguments = ["train", config, "--workers", "1"]
            p.standardOutput = FileHandle.nullDevice
            p.standardError = FileHandle.nullDevice
            try p.run()
            // Wait for the first checkpoint (start-up can take seconds on a loaded CI machine), then kill at a
            // moment that varies by round: checkpoints are written every step, so some kills land mid-write.
            let deadline = Date().addingTimeInterval(60)
            while !hasCheckpoint(dir + "/ckpt") && p.isRunning && Date() < deadline { usleep(5_000) }
            usleep(UInt32((round * 37_000) % 250_000))
            kill(p.processIdentifier, SIGKILL)
            p.waitUntilExit()
            let files = ((try? fm.contentsOfDirectory(atPath: dir + "/ckpt")) ?? []).filter { $0.hasPrefix("ckpt-") }
                .sorted()
            guard let newest = files.last else { continue }
            // The newest visible checkpoint must be complete: it parses and validates.
            let o = try loom(["evaluate", dir + "/ckpt/" + newest])
            #expect(o.status == 0, "round \(round): \(newest): \(o.stderr)")
            loaded += 1
        }
        #expect(loaded == 12)
    }

    private func hasCheckpoint(_ dir: String) -> Bool {
        ((try? FileManager.default.contentsOfDirectory(atPath: dir)) ?? []).contains { $0.hasPrefix("ckpt-") }
    }

    @Test("a truncated or corrupted weights file: one clear line, no crash")
    func corruptWeights() throws {
        let dir = temporaryFolder("loom-cli")
        writeGoodIDX(dir)
        let o = try loom(["train", idxConfig(dir), "--save-weights", dir + "/w.safetensors"])
        #expect(o.status == 0)
        let full = try Data(contentsOf: URL(fileURLWithPath: dir + "/w.safetensors"))
        _ = FileManager.default.createFile(atPath: dir + "/cut.safetensors", contents: full.prefix(full.count - 10))
        expectOneLineError(try loom(["evaluate", dir + "/cut.safetensors"]), ["cut.safetensors", "truncated"])
        var bad = full
        bad[12] = 0
        _ = FileManager.default.createFile(atPath: dir + "/bad.safetensors", contents: bad)
        expectOneLineError(try loom(["predict", dir + "/bad.safetensors", dir + "/test-images"]), ["bad.safetensors"])
        expectOneLineError(try loom(["evaluate", dir + "/none.safetensors"]), ["none.safetensors", "no such file"])
        expectOneLineError(
            try loom(["train", idxConfig(dir), "--init-weights", dir + "/cut.safetensors"]), ["cut.safetensors"])
        let ok = try loom(["predict", dir + "/w.safetensors", dir + "/test-images"])
        #expect(ok.status == 0 && ok.stdout.split(separator: "\n").count == 3)
    }
}

@Suite("Divergence, signals and resource limits", .serialized)
struct FaultTests {
    @Test("a learning rate that makes training diverge: exit 3, one line with epoch and step, no checkpoint")
    func divergence() throws {
        let dir = temporaryFolder("loom-cli")
        let path = try longConfig(dir)
        let o = try loom(["train", path, "--set", "optimizer.learning_rate=1e30", "--report", dir + "/r.json"])
        #expect(o.status == 3)
        expectOneLineError(o, ["diverged at epoch 1, step", "not finite"])
        #expect(((try? FileManager.default.contentsOfDirectory(atPath: dir + "/ckpt")) ?? []).isEmpty)
        #expect(!FileManager.default.fileExists(atPath: dir + "/r.json"))
        // skip_batch skips bad batches, and stops after max_skipped_batches of them in a row.
        let s = try loom([
            "train", path, "--set", "optimizer.learning_rate=1e30", "--set", "training.on_nan=skip_batch",
            "--set", "training.max_skipped_batches=5",
        ])
        #expect(s.status == 3 && s.stderr.contains("diverged"))
        expectOneLineError(
            try loom(["train", path, "--set", "training.on_nan=ignore"]), ["training.on_nan", "stop, skip_batch"])
    }

    @Test(
        "SIGINT and SIGTERM: finish the step, checkpoint, say how to resume, exit 130 / 143; the resumed run ends as if never stopped",
        arguments: [SIGINT, SIGTERM])
    func signals(signal: Int32) throws {
        let dir = temporaryFolder("loom-cli")
        let path = try longConfig(dir, epochs: 8)  // ~2 s: the signal at 0.4 s lands mid-run
        let reference = try loom(["train", path, "--set", "checkpoint.dir=\(dir)/ref"])
        #expect(reference.status == 0)
        let digest = reference.stdout.split(separator: "\n").first { $0.hasPrefix("weights_digest") }
        let p = Process()
        p.executableURL = URL(fileURLWithPath: loomBinary)
        p.arguments = ["train", path, "--workers", "2"]
        let err = Pipe()
        p.standardOutput = FileHandle.nullDevice
        p.standardError = err
        try p.run()
        usleep(400_000)
        kill(p.processIdentifier, signal)
        let message = String(decoding: err.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        p.waitUntilExit()
        #expect(p.terminationStatus == 128 + signal, "\(message)")
        #expect(message.contains("interrupted by \(signal == SIGINT ? "SIGINT" : "SIGTERM") after step"))
        #expect(message.split(separator: "\n").count == 1)
        let checkpoint = try #require(
            message.split(separator: " ").first { $0.hasSuffix(".safetensors;") }.map { String($0.dropLast()) })
        let resumed = try loom(["train", path, "--resume", checkpoint, "--workers", "1"])
        #expect(resumed.status == 0, "\(resumed.stderr)")
        #expect(resumed.stdout.split(separator: "\n").first { $0.hasPrefix("weights_digest") } == digest)
    }

    @Test("a model too big for the machine fails up front with the size it needs")
    func tooBig() throws {
        let dir = temporaryFolder("loom-cli")
        writeGoodIDX(dir)
        let o = try loom([
            "train", idxConfig(dir), "--set", "model.layers.0.units=1000000",
            "--set", "model.layers.1={type: dense, units: 1000000, activation: softmax}",
        ])
        expectOneLineError(o, ["the model needs", "GiB", "this machine has"])
    }
}

@Suite("Prediction inputs")
struct PredictInputTests {
    @Test("PGM and PNG of the model's size are classified; other sizes and non-images are one clear line")
    func images() throws {
        let dir = temporaryFolder("loom-cli")
        writeGoodIDX(dir)
        #expect(try loom(["train", idxConfig(dir), "--save-weights", dir + "/w.safetensors"]).status == 0)
        let fm = FileManager.default
        _ = fm.createFile(atPath: dir + "/ok.pgm", contents: Data("P5\n2 2\n255\n".utf8) + Data([0, 128, 255, 7]))
        _ = fm.createFile(atPath: dir + "/ascii.pgm", contents: Data("P2\n# a comment\n2 2\n15\n0 5 10 15\n".utf8))
        _ = fm.createFile(
            atPath: dir + "/big.pgm", contents: Data("P5\n3 3\n255\n".utf8) + Data(repeating: 9, count: 9))
        #expect(writePNG(dir + "/ok.png", width: 2, height: 2, pixels: [0, 64, 128, 255]))
        let o = try loom([
            "predict", dir + "/w.safetensors", dir + "/ok.pgm", dir + "/ascii.pgm", dir + "/ok.png", "--top", "2",
        ])
        #expect(o.status == 0, "\(o.stderr)")
        #expect(o.stdout.split(separator: "\n").count == 3 && o.stdout.contains("ok.png: "))
        expectOneLineError(
            try loom(["predict", dir + "/w.safetensors", dir + "/big.pgm"]), ["big.pgm", "is 3×3", "2×2"])
        expectOneLineError(try loom(["predict", dir + "/w.safetensors", dir + "/c.yaml"]), ["c.yaml", "not a PGM"])
    }

    @Test("an empty data set is an error")
    func emptyDataset() throws {
        let dir = temporaryFolder("loom-cli")
        writeGoodIDX(dir)
        _ = FileManager.default.createFile(atPath: dir + "/train-images", contents: idx([0, 2, 2], []))
        _ = FileManager.default.createFile(atPath: dir + "/train-labels", contents: idx([0], []))
        expectOneLineError(try loom(["train", idxConfig(dir)]), ["train-images", "holds no samples"])
    }
}
