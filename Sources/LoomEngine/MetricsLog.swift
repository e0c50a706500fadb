// MetricsLog: a run's history on disk — metrics.csv and metrics.jsonl (a row per epoch, and one for an epoch the
// run stopped in: epoch, epoch_fraction, step (the global optimizer step), loss,
// accuracy, val_loss, val_accuracy, learning_rate, samples_per_second, seconds), config.yaml (the resolved
// config), and at the end metrics.svg (loss and accuracy per epoch). Each file is rewritten atomically, so an
// interrupted run leaves complete files.
import Foundation
import LoomConfig

/// Writes the per-epoch metrics of a run to a folder.
public final class MetricsLog {
    public let dir: String
    private var rows: [[String: Any]] = []

    /// Creates the folder, writes config.yaml; when resuming, keeps the rows already in metrics.jsonl.
    public init(dir: String, config: RunConfig, resuming: Bool) throws(LoomError) {
        self.dir = dir
        do {
            try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
            try atomicWrite(config.yaml, to: dir + "/config.yaml")
        } catch { throw .usage("cannot write to log folder \(dir): \(error.localizedDescription)") }
        if resuming, let text = try? String(contentsOfFile: dir + "/metrics.jsonl", encoding: .utf8) {
            for line in text.split(separator: "\n") {
                if let row = try? JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any] {
                    rows.append(row)
                }
            }
        }
    }

    static let columns = [
        "epoch", "step", "loss", "accuracy", "val_loss", "val_accuracy", "learning_rate",
        "samples_per_second", "seconds",
    ]

    /// Adds an epoch's row and rewrites metrics.csv and metrics.jsonl.
    public func append(_ r: EpochRecord, learningRate: Double) {
        var row: [String: Any] = [
            "epoch": r.epoch, "epoch_fraction": r.fraction, "step": r.globalStep, "loss": r.loss,
            "accuracy": r.accuracy,
            "learning_rate": learningRate, "samples_per_second": r.samplesPerSecond, "seconds": r.seconds,
        ]
        if let v = r.valLoss { row["val_loss"] = v }
        if let v = r.valAccuracy { row["val_accuracy"] = v }
        rows.removeAll { ($0["epoch"] as? Int) == r.epoch }
        rows.append(row)
        var csv = Self.columns.joined(separator: ",") + "\n"
        var jsonl = ""
        for row in rows {
            csv += Self.columns.map { key in row[key].map { "\($0)" } ?? "" }.joined(separator: ",") + "\n"
            if let data = try? JSONSerialization.data(withJSONObject: row, options: [.sortedKeys]) {
                jsonl += String(decoding: data, as: UTF8.self) + "\n"
            }
        }
        try? atomicWrite(csv, to: dir + "/metrics.csv")
        try? atomicWrite(jsonl, to: dir + "/metrics.jsonl")
    }

    /// Writes metrics.svg: loss (left) and accuracy (right) per epoch, validation dashed.
    public func finish() {
        guard !rows.isEmpty else { return }
        func series(_ key: String) -> [(Double, Double)] {
            rows.compactMap { r in
                guard let e = r["epoch"] as? Int, let v = r[key] as? Double else { return nil }
                return (Double(e), v)
            }
        }
        let panels = [
            ("loss", series("loss"), series("val_loss")), ("accuracy", series("accuracy"), series("val_accuracy")),
        ]
        let pw = 400.0
        let ph = 300.0
        let m = 50.0
        var svg =
            "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"\(Int(2 * pw))\" height=\"\(Int(ph))\" font-family=\"sans-serif\" font-size=\"12\">\n<rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n"
        let epochs = rows.compactMap { $0["epoch"] as? Int }
        let (e0, e1) = (Double(epochs.min()!), Double(max(epochs.max()!, epochs.min()! + 1)))
        for (i, (name, train, val)) in panels.enumerated() {
            let ox = Double(i) * pw
            let values = (train + val).map(\.1)
            var lo = values.min() ?? 0
            var hi = values.max() ?? 1
            if hi - lo < 1e-9 {
                lo -= 0.5
                hi += 0.5
            }
            let pad = (hi - lo) * 0.08
            lo -= pad
            hi += pad
            func x(_ e: Double) -> Double { ox + m + (e - e0) / (e1 - e0) * (pw - 1.6 * m) }
            func y(_ v: Double) -> Double { ph - m - (v - lo) / (hi - lo) * (ph - 1.8 * m) }
            svg +=
                "<text x=\"\(ox + pw / 2)\" y=\"20\" text-anchor=\"middle\" font-size=\"14\">\(name) per epoch</text>\n"
            svg +=
                "<line x1=\"\(ox + m)\" y1=\"\(ph - m)\" x2=\"\(ox + pw - 0.6 * m)\" y2=\"\(ph - m)\" stroke=\"black\"/>\n"
            svg += "<line x1=\"\(ox + m)\" y1=\"\(ph - m)\" x2=\"\(ox + m)\" y2=\"\(0.8 * m)\" stroke=\"black\"/>\n"
            for k in 0...4 {
                let v = lo + (hi - lo) * Double(k) / 4
                svg += String(
                    format: "<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"end\">%.3f</text>\n", ox + m - 5, y(v) + 4, v)
                svg += String(
                    format: "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"#eee\"/>\n", ox + m, y(v),
                    ox + pw - 0.6 * m, y(v))
            }
            for e in epochs {
                svg += "<text x=\"\(x(Double(e)))\" y=\"\(ph - m + 16)\" text-anchor=\"middle\">\(e)</text>\n"
            }
            svg += "<text x=\"\(ox + pw / 2)\" y=\"\(ph - 10)\" text-anchor=\"middle\">epoch</text>\n"
            for (points, color, dash, label) in [
                (train, "#1f77b4", "", "train"), (val, "#ff7f0e", " stroke-dasharray=\"6 4\"", "validation"),
            ] where !points.isEmpty {
                svg +=
                    "<polyline fill=\"none\" stroke=\"\(color)\" stroke-width=\"2\"\(dash) points=\""
                    + points.map { "\(x($0.0)),\(y($0.1))" }.joined(separator: " ") + "\"/>\n"
                for p in points { svg += "<circle cx=\"\(x(p.0))\" cy=\"\(y(p.1))\" r=\"3\" fill=\"\(color)\"/>\n" }
                let ly = label == "train" ? 40.0 : 56.0
                svg +=
                    "<text x=\"\(ox + pw - 0.7 * m)\" y=\"\(ly)\" text-anchor=\"end\" fill=\"\(color)\">\(label)</text>\n"
            }
        }
        try? atomicWrite(svg + "</svg>\n", to: dir + "/metrics.svg")
    }
}
