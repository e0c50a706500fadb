// tune.svg: the monitored metric per trial (bars), then one panel per swept key with the metric against the
// key's value (a log axis for positive numbers spanning more than 20×, evenly spaced categories for text).
import Foundation
import Loom

/// The sweep's chart; `trials` in trial order, each with its `key=value` overrides and its metric (nil: failed).
func tuneChart(_ trials: [(overrides: [String], value: Double?)], monitor: String) -> String {
    let values = trials.compactMap(\.value)
    let axis = Axis(
        covering: values.min() ?? 0, values.max() ?? 1, ticks: 5,
        limits: monitor.hasSuffix("accuracy") ? 0...1 : 0...Double.infinity)
    let keys = sweptKeys(trials.map(\.overrides))
    let (panelHeight, left, top, bottom) = (320.0, 60.0, 40.0, 50.0)
    let w = max(360.0, 40 + 36 * Double(trials.count))
    let h = panelHeight * Double(1 + keys.count)
    var s = """
        <svg xmlns="http://www.w3.org/2000/svg" width="\(Int(w))" height="\(Int(h))" font-family="sans-serif" \
        font-size="12">
        <rect width="100%" height="100%" fill="white"/>

        """
    /// The panel's title, value gridlines and labels; returns the y of a value.
    func frame(_ title: String, at y0: Double, xLabel: String) -> (Double) -> Double {
        let position = { (v: Double) in axis.position(v, from: y0 + panelHeight - bottom, to: y0 + top) }
        s += "<text x=\"\(w / 2)\" y=\"\(y0 + 22)\" text-anchor=\"middle\" font-size=\"14\">\(title)</text>\n"
        for t in axis.ticks {
            let y = position(t)
            s += String(
                format: "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"#eee\"/>\n", left, y, w - 10, y)
            s += String(
                format: "<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"end\">%@</text>\n", left - 5, y + 4, axis.label(t))
        }
        s += "<text x=\"\(w / 2)\" y=\"\(y0 + panelHeight - 10)\" text-anchor=\"middle\">\(xLabel)</text>\n"
        return position
    }
    let bars = frame("\(monitor) per trial", at: 0, xLabel: "trial")
    for (i, trial) in trials.enumerated() {
        let x = left + 10 + Double(i) * 36
        if let v = trial.value {
            let y = bars(max(axis.lo, v))
            s += String(
                format: "<rect x=\"%.1f\" y=\"%.1f\" width=\"24\" height=\"%.1f\" fill=\"#1f77b4\"/>\n", x, y,
                panelHeight - bottom - y)
        }
        s += String(
            format: "<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"middle\">%d</text>\n", x + 12, panelHeight - bottom + 16,
            i + 1)
    }
    for (k, key) in keys.enumerated() {
        let y0 = panelHeight * Double(k + 1)
        let y = frame("\(monitor) against \(key)", at: y0, xLabel: key)
        let points = trials.compactMap { t -> (String, Double)? in
            guard let v = t.value, let raw = value(of: key, in: t.overrides) else { return nil }
            return (raw, v)
        }
        let x = keyAxis(points.map(\.0), from: left + 20, to: w - 30)
        for tick in x.ticks {
            s += String(
                format: "<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"middle\">%@</text>\n", tick.x,
                y0 + panelHeight - bottom + 16, tick.label)
        }
        for (raw, v) in points {
            s += String(
                format: "<circle cx=\"%.1f\" cy=\"%.1f\" r=\"4\" fill=\"#1f77b4\"/>\n", x.position(raw),
                y(max(axis.lo, v)))
        }
    }
    return s + "</svg>\n"
}

/// Keys whose value differs between trials, in the order they first appear.
func sweptKeys(_ overrides: [[String]]) -> [String] {
    var seen: [String: Set<String>] = [:]
    var order: [String] = []
    for list in overrides {
        for o in list {
            guard let eq = o.firstIndex(of: "=") else { continue }
            let key = String(o[..<eq])
            if seen[key] == nil { order.append(key) }
            seen[key, default: []].insert(String(o[o.index(after: eq)...]))
        }
    }
    return order.filter { (seen[$0]?.count ?? 0) > 1 }
}

func value(of key: String, in overrides: [String]) -> String? {
    overrides.last { $0.hasPrefix(key + "=") }.map { String($0.dropFirst(key.count + 1)) }
}

/// Where a key's values go across a panel: numbers on a linear or log scale, anything else as categories.
func keyAxis(_ raws: [String], from x0: Double, to x1: Double) -> (
    position: (String) -> Double, ticks: [(x: Double, label: String)]
) {
    let numbers = raws.compactMap(Double.init)
    guard numbers.count == raws.count, let lo = numbers.min(), let hi = numbers.max(), hi > lo else {
        let categories = Array(Set(raws)).sorted()
        let place = { (raw: String) -> Double in
            let i = Double(categories.firstIndex(of: raw) ?? 0)
            return categories.count == 1 ? (x0 + x1) / 2 : x0 + i / Double(categories.count - 1) * (x1 - x0)
        }
        return (place, categories.map { (place($0), $0) })
    }
    let logarithmic = lo > 0 && hi / lo > 20
    let f = { (v: Double) in logarithmic ? log10(v) : v }
    let place = { (raw: String) -> Double in x0 + (f(Double(raw) ?? lo) - f(lo)) / (f(hi) - f(lo)) * (x1 - x0) }
    let labels = Array(Set(numbers)).sorted()
    let shown =
        labels.count <= 8
        ? labels : (0..<5).map { logarithmic ? lo * pow(hi / lo, Double($0) / 4) : lo + (hi - lo) * Double($0) / 4 }
    let ticks = shown.map { v in
        (x: x0 + (f(v) - f(lo)) / (f(hi) - f(lo)) * (x1 - x0), label: String(format: "%.3g", v))
    }
    return (place, ticks)
}
