// MetricsLog: a run's history on disk — metrics.csv and metrics.jsonl (a row per epoch, and one for an epoch the
// run stopped in: epoch, epoch_fraction, step (the global optimizer step), loss,
// accuracy, val_loss, val_accuracy, learning_rate, samples_per_second, seconds; for regression mae and val_mae
// instead of the accuracies), config.yaml (the resolved config), and at the end metrics.svg (loss and the metric
// per epoch). Each file is rewritten atomically, so an
// interrupted run leaves complete files.
import Foundation
import LoomConfig
import LoomNN

/// Writes the per-epoch metrics of a run to a folder.
public final class MetricsLog {
    /// The folder the files are written to.
    public let dir: String
    /// The metric logged beside the loss.
    public let metric: Metric
    private var rows: [[String: Any]] = []

    /// Creates the folder, writes config.yaml; when resuming, keeps the rows already in metrics.jsonl.
    public init(dir: String, config: RunConfig, resuming: Bool) throws(LoomError) {
        self.dir = dir
        metric = config.metric
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

    /// The columns, the metric's named as it is reported ("accuracy", or "mae" for regression).
    var columns: [String] {
        [
            "epoch", "epoch_fraction", "step", "loss", metric.rawValue, "val_loss", "val_\(metric.rawValue)",
            "learning_rate", "samples_per_second", "seconds",
        ]
    }

    /// Adds an epoch's row and rewrites metrics.csv and metrics.jsonl.
    public func append(_ r: EpochRecord, learningRate: Double) {
        var row: [String: Any] = [
            "epoch": r.epoch, "epoch_fraction": r.fraction, "step": r.globalStep, "loss": r.loss,
            metric.rawValue: r.accuracy,
            "learning_rate": learningRate, "samples_per_second": r.samplesPerSecond, "seconds": r.seconds,
        ]
        if let v = r.valLoss { row["val_loss"] = v }
        if let v = r.valAccuracy { row["val_\(metric.rawValue)"] = v }
        rows.removeAll { ($0["epoch"] as? Int) == r.epoch }
        rows.append(row)
        var csv = columns.joined(separator: ",") + "\n"
        var jsonl = ""
        for row in rows {
            csv += columns.map { key in row[key].map { "\($0)" } ?? "" }.joined(separator: ",") + "\n"
            if let data = try? JSONSerialization.data(withJSONObject: row, options: [.sortedKeys]) {
                jsonl += String(decoding: data, as: UTF8.self) + "\n"
            }
        }
        try? atomicWrite(csv, to: dir + "/metrics.csv")
        try? atomicWrite(jsonl, to: dir + "/metrics.jsonl")
    }

    /// Writes metrics.svg: loss (left) and accuracy (right) against epochs (a partial epoch at its fraction),
    /// validation dashed; round ticks, accuracy within [0, 1], a loss axis from ≥ 0, legends above the plots.
    public func finish() {
        guard !rows.isEmpty else { return }
        func x(_ r: [String: Any]) -> Double? {
            guard let e = r["epoch"] as? Int else { return nil }
            return Double(e - 1) + (r["epoch_fraction"] as? Double ?? 1)
        }
        func series(_ key: String) -> [(Double, Double)] {
            rows.compactMap { r in x(r).flatMap { e in (r[key] as? Double).map { (e, $0) } } }
        }
        let panels = [
            ("loss", series("loss"), series("val_loss"), 0.0...Double.infinity),
            (
                metric.rawValue, series(metric.rawValue), series("val_\(metric.rawValue)"),
                metric == .accuracy ? 0.0...1.0 : 0.0...Double.infinity
            ),
        ]
        let (pw, ph, left, right, top, bottom) = (400.0, 320.0, 55.0, 20.0, 62.0, 45.0)
        var svg =
            "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"\(Int(2 * pw))\" height=\"\(Int(ph))\" font-family=\"sans-serif\" font-size=\"12\">\n<rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n"
        let xs = rows.compactMap(x)
        let epochAxis = Axis(covering: min(0, xs.min()!), max(1, xs.max()!), ticks: 6, limits: 0...Double.infinity)
        for (i, (name, train, val, limits)) in panels.enumerated() {
            let ox = Double(i) * pw
            let values = (train + val).map(\.1)
            let axis = Axis(covering: values.min() ?? 0, values.max() ?? 1, ticks: 5, limits: limits)
            func px(_ e: Double) -> Double { epochAxis.position(e, from: ox + left, to: ox + pw - right) }
            func py(_ v: Double) -> Double { axis.position(v, from: ph - bottom, to: top) }
            svg +=
                "<text x=\"\(ox + pw / 2)\" y=\"20\" text-anchor=\"middle\" font-size=\"14\">\(name) per epoch</text>\n"
            for v in axis.ticks {
                svg += String(
                    format: "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"#eee\"/>\n",
                    px(epochAxis.lo), py(v),
                    px(epochAxis.hi), py(v))
                svg += String(
                    format: "<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"end\">%@</text>\n", ox + left - 5, py(v) + 4,
                    axis.label(v))
            }
            for e in epochAxis.ticks {
                svg += String(
                    format: "<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"middle\">%@</text>\n", px(e), ph - bottom + 16,
                    epochAxis.label(e))
            }
            svg += String(
                format: "<polyline fill=\"none\" stroke=\"black\" points=\"%.1f,%.1f %.1f,%.1f %.1f,%.1f\"/>\n",
                ox + left, top,
                ox + left, ph - bottom, ox + pw - right, ph - bottom)
            svg += "<text x=\"\(ox + pw / 2)\" y=\"\(ph - 10)\" text-anchor=\"middle\">epoch</text>\n"
            var legendX = ox + left
            for (points, color, dash, label) in [
                (train, "#1f77b4", "", "train"), (val, "#ff7f0e", " stroke-dasharray=\"6 4\"", "validation"),
            ] where !points.isEmpty {
                svg +=
                    "<polyline fill=\"none\" stroke=\"\(color)\" stroke-width=\"2\"\(dash) points=\""
                    + points.map { String(format: "%.1f,%.1f", px($0.0), py($0.1)) }.joined(separator: " ") + "\"/>\n"
                for p in points {
                    svg += String(
                        format: "<circle cx=\"%.1f\" cy=\"%.1f\" r=\"3\" fill=\"%@\"/>\n", px(p.0), py(p.1), color)
                }
                // The legend sits in its own row above the plot, so it never covers a point.
                svg += String(
                    format: "<line x1=\"%.1f\" y1=\"40\" x2=\"%.1f\" y2=\"40\" stroke=\"%@\" stroke-width=\"2\"%@/>\n",
                    legendX,
                    legendX + 20, color, dash)
                svg += String(format: "<text x=\"%.1f\" y=\"44\" fill=\"%@\">%@</text>\n", legendX + 25, color, label)
                legendX += 110
            }
        }
        try? atomicWrite(svg + "</svg>\n", to: dir + "/metrics.svg")
    }
}
