// The core's fp32 FMA peak, measured: 12 independent FMA chains (enough to cover the FMA latency on two pipes)
// of one register vector each, no memory traffic. Loom's kernels are reported as a fraction of this.

import LoomKernelTypes

/// Measures floating-point operations per second of pure FMAs on the calling thread, best of `repeats`.
public func measureFMAPeak(iterations: Int = 2_000_000, repeats: Int = 5, clock: () -> Double) -> Double {
    var best = 0.0
    var sink = Vec()
    for _ in 0..<repeats {
        var a0 = Vec(repeating: 1)
        var a1 = a0
        var a2 = a0
        var a3 = a0
        var a4 = a0
        var a5 = a0
        var a6 = a0
        var a7 = a0
        var a8 = a0
        var a9 = a0
        var a10 = a0
        var a11 = a0
        let x = Vec(repeating: 0.999_999)
        let y = Vec(repeating: 1e-7)
        let t0 = clock()
        for _ in 0..<iterations {
            a0 = a0.addingProduct(x, y)
            a1 = a1.addingProduct(x, y)
            a2 = a2.addingProduct(x, y)
            a3 = a3.addingProduct(x, y)
            a4 = a4.addingProduct(x, y)
            a5 = a5.addingProduct(x, y)
            a6 = a6.addingProduct(x, y)
            a7 = a7.addingProduct(x, y)
            a8 = a8.addingProduct(x, y)
            a9 = a9.addingProduct(x, y)
            a10 = a10.addingProduct(x, y)
            a11 = a11.addingProduct(x, y)
        }
        let seconds = clock() - t0
        sink += a0 + a1 + a2 + a3 + a4 + a5 + a6 + a7 + a8 + a9 + a10 + a11
        best = max(best, Double(iterations) * 12 * 2 * Double(Vec.scalarCount) / seconds)
    }
    return sink[0] == 42 ? best + 1e-9 : best  // keep the chains alive
}
