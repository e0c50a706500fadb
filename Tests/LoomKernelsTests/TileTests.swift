import LoomKernels
import Testing

/// A product computed as a grid of tiles (the engine's 2-D split of a layer's product among workers) must equal
/// the product computed whole, bit for bit: the trained weights may not depend on how the work was cut.
@Suite("GEMM tiles")
struct TileTests {
    /// C = op(A)·op(B) with `epilogue` ("none", "bias", "biasRelu", "reluMask"), whole and as r × c tiles.
    func compare(m: Int, n: Int, k: Int, tb: Bool, epilogue: String, rows r: Int, columns c: Int) {
        var rng = Lcg(s: UInt64(m * 7919 + n * 104_729 + k * 31 + r * 3 + c))
        let (lda, ldb, ldc) = (k + 1, (tb ? k : n) + 2, n + 3)
        let a = (0..<m * lda).map { _ in rng.next() }
        let b = (0..<(tb ? n : k) * ldb).map { _ in rng.next() }
        let bias = (0..<n).map { _ in rng.next() }
        let mask = (0..<m * ldc).map { _ in rng.next() }
        var whole = [Float](repeating: 0, count: m * ldc)
        var tiled = [Float](repeating: 0, count: m * ldc)
        let workspace = GemmWorkspace()
        a.withUnsafeBufferPointer { a in
            b.withUnsafeBufferPointer { b in
                bias.withUnsafeBufferPointer { bias in
                    mask.withUnsafeBufferPointer { mask in
                        func run(_ c: UnsafeMutablePointer<Float>, _ i: Range<Int>, _ j: Range<Int>) {
                            let e: GemmEpilogue =
                                switch epilogue {
                                case "bias": .bias(bias.baseAddress! + j.lowerBound)
                                case "biasRelu": .biasRelu(bias.baseAddress! + j.lowerBound)
                                case "reluMask":
                                    .reluMask(mask.baseAddress! + i.lowerBound * ldc + j.lowerBound, ld: ldc)
                                default: .none
                                }
                            let bTile = tb ? b.baseAddress! + j.lowerBound * ldb : b.baseAddress! + j.lowerBound
                            gemm(
                                m: i.count, n: j.count, k: k, a: a.baseAddress! + i.lowerBound * lda, lda: lda,
                                transposeA: false, b: bTile, ldb: ldb, transposeB: tb,
                                c: c + i.lowerBound * ldc + j.lowerBound, ldc: ldc, epilogue: e, kernelWidth: n,
                                workspace: workspace)
                        }
                        whole.withUnsafeMutableBufferPointer { run($0.baseAddress!, 0..<m, 0..<n) }
                        tiled.withUnsafeMutableBufferPointer { t in
                            for g in 0..<r {
                                for h in 0..<c {
                                    run(t.baseAddress!, m * g / r..<m * (g + 1) / r, n * h / c..<n * (h + 1) / c)
                                }
                            }
                        }
                    }
                }
            }
        }
        for i in 0..<m {
            for j in 0..<n where whole[i * ldc + j].bitPattern != tiled[i * ldc + j].bitPattern {
                Issue.record("\(m)×\(n)×\(k) tb \(tb) \(epilogue) as \(r)×\(c) tiles: C[\(i), \(j)] differs")
                return
            }
        }
    }

    @Test(
        "forward (X·W + b, relu) and input gradient (dZ·Wᵀ, relu mask): any grid of tiles, bit for bit",
        arguments: [(1, 2), (2, 1), (3, 5), (4, 4), (1, 7), (8, 3), (2, 16), (16, 2)])
    func grids(rows: Int, columns: Int) {
        for (m, n, k) in [(64, 100, 37), (128, 512, 40), (19, 65, 600), (48, 40, 1100), (33, 17, 70)] {
            compare(m: m, n: n, k: k, tb: false, epilogue: "biasRelu", rows: rows, columns: columns)
            compare(m: m, n: n, k: k, tb: false, epilogue: "bias", rows: rows, columns: columns)
            compare(m: m, n: n, k: k, tb: true, epilogue: "reluMask", rows: rows, columns: columns)
            compare(m: m, n: n, k: k, tb: true, epilogue: "none", rows: rows, columns: columns)
        }
    }
}
