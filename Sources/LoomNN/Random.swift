import Foundation

// Random: seeded, reproducible generators. Initialization draws from one stream, shuffling from another, and
// dropout from a counter-based hash of (seed, step, row, unit), so no result depends on which thread draws.

/// xoshiro256** (Blackman & Vigna), seeded through SplitMix64. Its whole state is four words, so a checkpoint
/// can store it and a resumed run continues the same sequence.
public struct Random: RandomNumberGenerator, Sendable, Equatable {
    /// The generator's 256-bit state.
    public var state: (UInt64, UInt64, UInt64, UInt64)

    /// A generator seeded by splitmix64 from `seed`.
    public init(seed: UInt64) {
        var s = seed
        state = (splitMix64(&s), splitMix64(&s), splitMix64(&s), splitMix64(&s))
    }

    public mutating func next() -> UInt64 {
        let result = rotl(state.1 &* 5, 7) &* 9
        let t = state.1 << 17
        state.2 ^= state.0
        state.3 ^= state.1
        state.1 ^= state.2
        state.0 ^= state.3
        state.2 ^= t
        state.3 = rotl(state.3, 45)
        return result
    }

    /// Uniform in [0, 1) with 24 random bits (every float in the grid equally likely).
    public mutating func nextUniform() -> Float { Float(next() >> 40) * (1.0 / 16_777_216.0) }

    /// Standard normal (Box–Muller, in double precision).
    public mutating func nextNormal() -> Double {
        let u1 = (Double(next() >> 11) + 0.5) * (1.0 / 9_007_199_254_740_992.0)
        let u2 = Double(next() >> 11) * (1.0 / 9_007_199_254_740_992.0)
        return (-2 * log(u1)).squareRoot() * cos(2 * Double.pi * u2)
    }

    public static func == (a: Random, b: Random) -> Bool {
        a.state.0 == b.state.0 && a.state.1 == b.state.1 && a.state.2 == b.state.2 && a.state.3 == b.state.3
    }
}

@inline(__always) func rotl(_ x: UInt64, _ k: UInt64) -> UInt64 { (x << k) | (x >> (64 - k)) }

@inline(__always) func splitMix64(_ s: inout UInt64) -> UInt64 {
    s &+= 0x9E37_79B9_7F4A_7C15
    var z = s
    z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
    z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
    return z ^ (z >> 31)
}

/// A stateless hash of four words to a uniform float in [0, 1): the dropout mask of (seed, step, row, unit).
@inline(__always)
public func hashUniform(_ a: UInt64, _ b: UInt64, _ c: UInt64, _ d: UInt64) -> Float {
    var s = a ^ (b &* 0x9E37_79B9_7F4A_7C15) ^ (c &* 0xC2B2_AE3D_27D4_EB4F) ^ (d &* 0x1656_67B1_9E37_79F9)
    return Float(splitMix64(&s) >> 40) * (1.0 / 16_777_216.0)
}

/// A permutation of 0..<n by Fisher–Yates with `rng` (the per-epoch shuffle).
public func shuffledIndices(_ n: Int, rng: inout Random, into out: UnsafeMutablePointer<Int32>) {
    for i in 0..<n { out[i] = Int32(i) }
    if n < 2 { return }
    for i in stride(from: n - 1, to: 0, by: -1) {
        let j = Int(rng.next() % UInt64(i + 1))
        let t = out[i]
        out[i] = out[j]
        out[j] = t
    }
}
