import Foundation
import LoomTestSupport
import Testing

@Suite("Learning-rate schedules from the config", .serialized)
struct ScheduleCLITests {
    /// The tiny IDX config (3 steps an epoch) with `schedule` under optimizer.
    func config(_ dir: String, schedule: String, epochs: Int = 4) throws -> String {
        writeGoodIDX(dir)
        let path = idxConfig(dir)
        let text = try String(contentsOfFile: path, encoding: .utf8)
            .replacingOccurrences(
                of: "optimizer: {name: sgd, learning_rate: 0.1}",
                with: "optimizer: {name: sgd, learning_rate: 0.1, schedule: \(schedule)}"
            )
            .replacingOccurrences(of: "epochs: 2", with: "epochs: \(epochs)")
        try text.write(toFile: path, atomically: true, encoding: .utf8)
        return path
    }

    @Test("a run cut in the middle of a schedule and resumed ends bit for bit where the whole run does")
    func resumeMidSchedule() throws {
        let dir = temporaryFolder("loom-cli")
        let path = try config(
            dir, schedule: "{name: cosine_decay, decay_steps: 10, alpha: 0.1, warmup_steps: 2, warmup_target: 0.3}")
        let whole = try loom(["train", path, "--log-dir", dir + "/log"])
        #expect(whole.status == 0, "\(whole.stderr)")
        let cut = try loom(["train", path, "--set", "checkpoint.dir=\(dir)/ck", "--max-steps", "5"])
        #expect(cut.status == 0)
        let resumed = try loom([
            "train", path, "--set", "checkpoint.dir=\(dir)/ck", "--resume", dir + "/ck/ckpt-000000005.safetensors",
        ])
        #expect(resumed.status == 0, "\(resumed.stderr)")
        #expect(digest(resumed) == digest(whole) && digest(whole) != nil)
        // metrics.csv's learning_rate: the rate of each epoch's last step (steps 3, 6, 9, 12).
        let rows = try String(contentsOfFile: dir + "/log/metrics.csv", encoding: .utf8).split(separator: "\n")
            .dropFirst()
        let rates = rows.map { Double($0.split(separator: ",", omittingEmptySubsequences: false)[7])! }
        func keras(_ s: Double) -> Double {
            s < 2 ? 0.1 + 0.2 * s / 2 : 0.3 * (0.9 * 0.5 * (1 + cos(Double.pi * min(s - 2, 10) / 10)) + 0.1)
        }
        for (rate, step) in zip(rates, [3, 6, 9, 12]) {
            #expect(abs(rate - keras(Double(step - 1))) < 1e-6, "step \(step): \(rate)")
        }
        // A constant rate changes nothing: the schedule-free config and "constant" give the same weights.
        let plain = try loom(["train", idxConfig(dir), "--epochs", "4"])
        let constant = try loom(["train", try config(dir, schedule: "constant")])
        #expect(digest(plain) == digest(constant))
    }

    @Test("a schedule that cannot be used is one line naming its key")
    func badSchedules() throws {
        let dir = temporaryFolder("loom-cli")
        expectOneLineError(
            try loom(["train", try config(dir, schedule: "{name: exponential_decay, decay_rate: 0.5}")]),
            ["optimizer.schedule.decay_steps", "missing"])
        expectOneLineError(
            try loom([
                "train",
                try config(dir, schedule: "{name: piecewise_constant, boundaries: [10, 5], values: [1, 2, 3]}"),
            ]),
            ["optimizer.schedule.boundaries.1"])
        expectOneLineError(
            try loom(["train", try config(dir, schedule: "{name: cosine_decay, decay_steps: 10, alpha: 2}")]),
            ["optimizer.schedule.alpha"])
        expectOneLineError(try loom(["train", try config(dir, schedule: "cosine")]), ["did you mean 'cosine_decay'"])
    }
}

@Suite("Callbacks from the config", .serialized)
struct CallbackCLITests {
    /// The tiny IDX config (3 steps an epoch, 4 epochs) with a callbacks list.
    func config(_ dir: String, _ callbacks: String) throws -> String {
        writeGoodIDX(dir)
        let path = idxConfig(dir)
        let text =
            try String(contentsOfFile: path, encoding: .utf8).replacingOccurrences(of: "epochs: 2", with: "epochs: 4")
            + "\ncallbacks:\n  - \(callbacks)\n"
        try text.write(toFile: path, atomically: true, encoding: .utf8)
        return path
    }

    @Test("reduce_lr_on_plateau halves the rate each epoch; a run resumed after a reduction ends bit for bit the same")
    func reduceAndResume() throws {
        let dir = temporaryFolder("loom-cli")
        // min_delta 10: no epoch improves on the first, so every later one reduces the rate.
        let path = try config(
            dir, "{name: reduce_lr_on_plateau, monitor: loss, patience: 0, factor: 0.5, min_delta: 10}")
        let whole = try loom(["train", path, "--log-dir", dir + "/log"])
        #expect(whole.status == 0 && whole.stdout.contains("reducing the learning rate to 0.05"), "\(whole.stdout)")
        let rows = try String(contentsOfFile: dir + "/log/metrics.csv", encoding: .utf8).split(separator: "\n")
            .dropFirst()
        #expect(
            rows.map { $0.split(separator: ",", omittingEmptySubsequences: false)[7] } == [
                "0.1", "0.1", "0.05", "0.025",
            ])
        let cut = try loom(["train", path, "--set", "checkpoint.dir=\(dir)/ck", "--max-steps", "7"])
        #expect(cut.status == 0)
        let resumed = try loom([
            "train", path, "--set", "checkpoint.dir=\(dir)/ck", "--resume", dir + "/ck/ckpt-000000007.safetensors",
        ])
        #expect(resumed.status == 0, "\(resumed.stderr)")
        #expect(digest(resumed) == digest(whole) && digest(whole) != nil)
    }

    @Test("early_stopping ends the run, still evaluates and saves; model_checkpoint writes the best weights")
    func earlyStopAndCheckpoint() throws {
        let dir = temporaryFolder("loom-cli")
        var path = try config(dir, "{name: early_stopping, monitor: loss, patience: 1, min_delta: 10}")
        let o = try loom(["train", path, "--save-weights", dir + "/w.safetensors"])
        #expect(
            o.status == 0 && o.stdout.contains("early stopping after epoch 2") && o.stdout.contains("trained 6 steps"))
        #expect(o.stdout.contains("test_accuracy") && FileManager.default.fileExists(atPath: dir + "/w.safetensors"))
        path = try config(
            dir,
            "{name: model_checkpoint, filepath: '\(dir)/best/e{epoch}.safetensors', monitor: loss, save_best_only: true}"
        )
        let c = try loom(["train", path])
        #expect(c.status == 0, "\(c.stderr)")
        let saved = try FileManager.default.contentsOfDirectory(atPath: dir + "/best")
        #expect(saved.contains("e1.safetensors") && !saved.isEmpty)
        #expect(try loom(["evaluate", dir + "/best/e1.safetensors"]).status == 0)
    }
}
