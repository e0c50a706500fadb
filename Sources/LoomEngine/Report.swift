// The JSON report of a run (`loom train --report FILE`), and the atomic write every output file goes through.
import Foundation
import LoomConfig

/// Builds the run report.
public enum ReportWriter {
    /// A JSON object: test_accuracy (for regression test_mae and test_rmse), test_loss, epochs (completed by this process), steps and samples (run by
    /// this process), train_seconds, samples_per_second, seconds_per_epoch, workers, weights_digest, the
    /// per-epoch history (a partial last epoch included) and the resolved config.
    public static func json(config: RunConfig, run: TrainingRun, result: RunResult) -> String {
        var object: [String: Any] = [
            "test_\(config.metric.rawValue)": result.test.map { $0.metricValue as Any } ?? NSNull(),
            "test_loss": result.test.map { $0.loss as Any } ?? NSNull(),
            "epochs": result.history.filter(\.complete).count,
            "steps": result.steps,
            "samples": result.samples,
            "train_seconds": result.trainSeconds,
            "samples_per_second": result.samplesPerSecond,
            "seconds_per_epoch": result.secondsPerEpoch,
            "version": Version.loom,
            "workers": run.placements.count,
            "cpus": run.placements.map(\.cpu),
            "weights_digest": result.weightsDigest,
            "batch_size": config.training.batchSize,
            "seed": config.training.seed,
            "parameters": run.model.parameterCount,
            "config": config.yaml,
        ]
        if let rmse = result.test?.rootMeanSquaredError { object["test_rmse"] = rmse }
        if let s = result.stoppedAtStep { object["stopped_at_step"] = s }
        if let c = result.lastCheckpoint { object["checkpoint"] = c }
        object["history"] = result.history.map { r -> [String: Any] in
            var row: [String: Any] = [
                "epoch": r.epoch, "epoch_fraction": r.fraction, "step": r.globalStep, "steps": r.steps,
                "samples": r.samples, "loss": r.loss, r.metric.rawValue: r.accuracy,
                "seconds": r.seconds, "samples_per_second": r.samplesPerSecond,
            ]
            if let v = r.valLoss { row["val_loss"] = v }
            if let v = r.valAccuracy { row["val_\(r.metric.rawValue)"] = v }
            return row
        }
        let data =
            (try? JSONSerialization.data(withJSONObject: object, options: [.prettyPrinted, .sortedKeys]))
            ?? Data("{}".utf8)
        return String(decoding: data, as: UTF8.self) + "\n"
    }
}

/// Writes `text` to `path` atomically: a temporary file in the same folder, fsync, rename over the target,
/// fsync of the folder. A crash at any point leaves either the old file or the new one, never half of one.
public func atomicWrite(_ text: String, to path: String) throws {
    try atomicWrite(Data(text.utf8), to: path)
}

/// Writes `data` to `path` through a temporary file and a rename: readers see the old file or the new one.
public func atomicWrite(_ data: Data, to path: String) throws {
    let url = URL(fileURLWithPath: path)
    let dir = url.deletingLastPathComponent().path
    let tmp = dir + "/.\(url.lastPathComponent).tmp-\(getpid())"
    let fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC, 0o644)
    guard fd >= 0 else { throw POSIXError(POSIXErrorCode(rawValue: errno) ?? .EIO) }
    var ok = data.withUnsafeBytes { raw -> Bool in
        var off = 0
        while off < raw.count {
            let n = write(fd, raw.baseAddress! + off, raw.count - off)
            if n <= 0 { return false }
            off += n
        }
        return true
    }
    ok = ok && fsync(fd) == 0
    close(fd)
    guard ok, rename(tmp, path) == 0 else {
        let code = errno
        unlink(tmp)
        throw POSIXError(POSIXErrorCode(rawValue: code) ?? .EIO)
    }
    let dfd = open(dir, O_RDONLY)
    if dfd >= 0 {
        fsync(dfd)
        close(dfd)
    }
}
