// Initializers, as Keras defines them. fan_in / fan_out are the kernel's input and output widths.
//   glorot_uniform  U(−l, l), l = √(6 / (fan_in + fan_out))             (Keras' default kernel initializer)
//   glorot_normal   truncated N(0, σ), σ = √(2 / (fan_in + fan_out)) / .8796  (alias xavier)
//   he_uniform      U(−l, l), l = √(6 / fan_in)
//   he_normal       truncated N(0, σ), σ = √(2 / fan_in) / .8796
//   lecun_normal    truncated N(0, σ), σ = √(1 / fan_in) / .8796
//   random_normal   N(mean, stddev)      random_uniform  U(min, max)      zeros, ones
// "truncated" redraws values beyond 2σ; .87962566 is the stddev of a unit normal truncated at ±2.
import Foundation

/// How a parameter tensor gets its first values.
public enum Initializer: Equatable, Sendable, CustomStringConvertible {
    /// Keras' variance-scaling initializers: Glorot (fan-in + fan-out), He (fan-in, relu), LeCun (fan-in).
    case glorotUniform, glorotNormal, heUniform, heNormal, lecunNormal
    /// Normal values of `mean` and `stddev`.
    case randomNormal(mean: Double, stddev: Double)
    /// Uniform values in [`min`, `max`).
    case randomUniform(min: Double, max: Double)
    /// All zeros, or all ones.
    case zeros, ones

    /// The names accepted in configs (Keras' spellings, plus `xavier` for glorot_normal).
    public static let names = [
        "glorot_uniform", "glorot_normal", "xavier", "he_uniform", "he_normal",
        "lecun_normal", "random_normal", "random_uniform", "zeros", "ones",
    ]

    public var description: String {
        switch self {
        case .glorotUniform: "glorot_uniform"
        case .glorotNormal: "glorot_normal"
        case .heUniform: "he_uniform"
        case .heNormal: "he_normal"
        case .lecunNormal: "lecun_normal"
        case .randomNormal(let m, let s): "random_normal(mean: \(m), stddev: \(s))"
        case .randomUniform(let lo, let hi): "random_uniform(min: \(lo), max: \(hi))"
        case .zeros: "zeros"
        case .ones: "ones"
        }
    }

    /// Fills `count` floats for a tensor with the given fans.
    public func fill(_ p: UnsafeMutablePointer<Float>, count: Int, fanIn: Int, fanOut: Int, rng: inout Random) {
        let truncatedScale = 0.87962566103423978
        switch self {
        case .zeros: p.update(repeating: 0, count: count)
        case .ones: p.update(repeating: 1, count: count)
        case .glorotUniform: uniform(p, count, limit: (6.0 / Double(fanIn + fanOut)).squareRoot(), &rng)
        case .heUniform: uniform(p, count, limit: (6.0 / Double(fanIn)).squareRoot(), &rng)
        case .glorotNormal:
            truncated(p, count, stddev: (2.0 / Double(fanIn + fanOut)).squareRoot() / truncatedScale, &rng)
        case .heNormal: truncated(p, count, stddev: (2.0 / Double(fanIn)).squareRoot() / truncatedScale, &rng)
        case .lecunNormal: truncated(p, count, stddev: (1.0 / Double(fanIn)).squareRoot() / truncatedScale, &rng)
        case .randomNormal(let mean, let stddev):
            for i in 0..<count { p[i] = Float(mean + stddev * rng.nextNormal()) }
        case .randomUniform(let lo, let hi):
            for i in 0..<count { p[i] = Float(lo + (hi - lo) * Double(rng.nextUniform())) }
        }
    }

    private func uniform(_ p: UnsafeMutablePointer<Float>, _ n: Int, limit: Double, _ rng: inout Random) {
        for i in 0..<n { p[i] = Float(-limit + 2 * limit * Double(rng.nextUniform())) }
    }

    private func truncated(_ p: UnsafeMutablePointer<Float>, _ n: Int, stddev: Double, _ rng: inout Random) {
        for i in 0..<n {
            var z = rng.nextNormal()
            while abs(z) > 2 { z = rng.nextNormal() }
            p[i] = Float(z * stddev)
        }
    }
}
