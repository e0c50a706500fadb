// Axes for the SVG charts Loom writes (metrics.svg, scaling.svg): round tick values 1, 2 or 5 × 10^k apart,
// bounds that stay inside what the quantity can be (accuracy in [0, 1], a loss ≥ 0), and labels with just
// enough decimals.
import Foundation

/// A chart axis: its bounds are tick values, so the data sits between round numbers.
public struct Axis: Equatable, Sendable {
    /// The axis' first tick.
    public let lo: Double
    /// The axis' last tick.
    public let hi: Double
    /// The distance between ticks.
    public let step: Double

    /// Round bounds around `lo...hi` with about `ticks` intervals, kept inside `limits` when given.
    public init(covering lo: Double, _ hi: Double, ticks: Int = 5, limits: ClosedRange<Double>? = nil) {
        var (a, b) = (min(lo, hi), max(lo, hi))
        if b - a < 1e-12 {
            let pad = a == 0 ? 1 : abs(a) * 0.1
            (a, b) = (a - pad, b + pad)
        }
        if let limits { (a, b) = (max(a, limits.lowerBound), min(b, limits.upperBound)) }
        let raw = (b - a) / Double(max(1, ticks))
        let magnitude = pow(10, (log10(raw)).rounded(.down))
        let step = [1.0, 2, 5, 10].map { $0 * magnitude }.first { $0 >= raw * 0.999 } ?? 10 * magnitude
        var low = (a / step).rounded(.down) * step
        var high = (b / step).rounded(.up) * step
        if let limits {
            low = max(low, limits.lowerBound)
            high = min(high, limits.upperBound)
        }
        (self.lo, self.hi, self.step) = (low, high, step)
    }

    /// The tick values from `lo` to `hi`.
    public var ticks: [Double] {
        let n = Int(((hi - lo) / step).rounded())
        return (0...max(0, n)).map { lo + Double($0) * step }
    }

    /// A tick's label with as many decimals as the step needs ("0.25", "3", "0.001").
    public func label(_ value: Double) -> String {
        let decimals = max(0, Int((-log10(step)).rounded(.up)))
        let text = String(format: "%.\(decimals)f", value)
        return text == "-" + String(format: "%.\(decimals)f", 0.0) ? String(text.dropFirst()) : text
    }

    /// Where `value` falls between `from` (at `lo`) and `to` (at `hi`).
    public func position(_ value: Double, from: Double, to: Double) -> Double {
        from + (value - lo) / (hi - lo) * (to - from)
    }
}
