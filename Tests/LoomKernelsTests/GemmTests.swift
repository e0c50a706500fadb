import LoomKernels
import Testing

/// A straightforward triple loop in Double: the reference every GEMM variant is checked against.
func referenceGemm(m: Int, n: Int, k: Int, a: [Float], lda: Int, ta: Bool, b: [Float], ldb: Int, tb: Bool) -> [Double] {
    var c = [Double](repeating: 0, count: m * n)
    for i in 0..<m {
        for j in 0..<n {
            var s = 0.0
            for p in 0..<k {
                let av = ta ? a[p * lda + i] : a[i * lda + p]
                let bv = tb ? b[j * ldb + p] : b[p * ldb + j]
                s += Double(av) * Double(bv)
            }
            c[i * n + j] = s
        }
    }
    return c
}

struct Lcg {
    var s: UInt64
    mutating func next() -> Float {
        s = s &* 6_364_136_223_846_793_005 &+ 1_442_695_040_888_963_407
        return Float(Int64(bitPattern: s >> 11) % 2001 - 1000) / 1000
    }
}

func checkGemm(
    m: Int, n: Int, k: Int, ta: Bool, tb: Bool, accumulate: Bool = false, epilogue: String = "none",
    seed: UInt64 = 1, workspace: GemmWorkspace = GemmWorkspace()
) {
    var rng = Lcg(s: seed &+ UInt64(m * 1_000_003 + n * 1009 + k))
    let lda = (ta ? m : k) + 3
    let ldb = (tb ? k : n) + 1
    let ldc = n + 2
    let a = (0..<(ta ? k : m) * lda).map { _ in rng.next() }
    let b = (0..<(tb ? n : k) * ldb).map { _ in rng.next() }
    let bias = (0..<n).map { _ in rng.next() }
    let mask = (0..<m * n).map { _ in rng.next() }
    let c0 = (0..<m * ldc).map { _ in rng.next() }
    var expected = referenceGemm(m: m, n: n, k: k, a: a, lda: lda, ta: ta, b: b, ldb: ldb, tb: tb)
    for i in 0..<m {
        for j in 0..<n {
            var v = expected[i * n + j] + (accumulate ? Double(c0[i * ldc + j]) : 0)
            switch epilogue {
            case "bias": v += Double(bias[j])
            case "biasRelu": v = max(0, v + Double(bias[j]))
            case "reluMask": v = mask[i * n + j] > 0 ? v : 0
            default: break
            }
            expected[i * n + j] = v
        }
    }
    var c = c0
    a.withUnsafeBufferPointer { ap in
        b.withUnsafeBufferPointer { bp in
            bias.withUnsafeBufferPointer { biasp in
                mask.withUnsafeBufferPointer { mp in
                    c.withUnsafeMutableBufferPointer { cp in
                        let e: GemmEpilogue =
                            switch epilogue {
                            case "bias": .bias(biasp.baseAddress!)
                            case "biasRelu": .biasRelu(biasp.baseAddress!)
                            case "reluMask": .reluMask(mp.baseAddress!, ld: n)
                            default: .none
                            }
                        gemm(
                            m: m, n: n, k: k, a: ap.baseAddress!, lda: lda, transposeA: ta, b: bp.baseAddress!,
                            ldb: ldb,
                            transposeB: tb, c: cp.baseAddress!, ldc: ldc, accumulate: accumulate, epilogue: e,
                            workspace: workspace)
                    }
                }
            }
        }
    }
    var worst = 0.0
    for i in 0..<m {
        for j in 0..<n {
            let err = abs(Double(c[i * ldc + j]) - expected[i * n + j]) / (1 + abs(expected[i * n + j]))
            worst = max(worst, err)
        }
        // Padding between rows is untouched.
        for j in n..<ldc { #expect(c[i * ldc + j] == c0[i * ldc + j], "wrote past the row at (\(i), \(j))") }
    }
    #expect(
        worst < 1e-5 * Double(max(1, k)).squareRoot(),
        "m \(m) n \(n) k \(k) ta \(ta) tb \(tb) acc \(accumulate) \(epilogue): error \(worst)")
}

@Suite("GEMM against a reference")
struct GemmTests {
    @Test("every transpose, edge sizes 1…65 in each dimension", arguments: [false, true], [false, true])
    func edgeSizes(ta: Bool, tb: Bool) {
        let ws = GemmWorkspace()
        for size in [1, 2, 3, 5, 7, 8, 9, 13, 15, 16, 17, 31, 32, 33, 47, 48, 63, 64, 65] {
            checkGemm(m: size, n: 17, k: 11, ta: ta, tb: tb, workspace: ws)
            checkGemm(m: 13, n: size, k: 19, ta: ta, tb: tb, workspace: ws)
            checkGemm(m: 7, n: 33, k: size, ta: ta, tb: tb, workspace: ws)
        }
    }

    @Test(
        "the workload's shapes, K not a multiple of the block, the 10-wide layer", arguments: [false, true],
        [false, true])
    func workloadShapes(ta: Bool, tb: Bool) {
        let ws = GemmWorkspace()
        checkGemm(m: 128, n: 512, k: 784, ta: ta, tb: tb, workspace: ws)
        checkGemm(m: 64, n: 10, k: 512, ta: ta, tb: tb, workspace: ws)
        checkGemm(m: 130, n: 10, k: 513, ta: ta, tb: tb, workspace: ws)
        checkGemm(m: 97, n: 96, k: 1030, ta: ta, tb: tb, workspace: ws)
        checkGemm(m: 100, n: 2, k: 3, ta: ta, tb: tb, workspace: ws)
        checkGemm(m: 4, n: 1, k: 2, ta: ta, tb: tb, workspace: ws)
    }

    @Test("accumulate and every epilogue", arguments: ["none", "bias", "biasRelu", "reluMask"])
    func epilogues(epilogue: String) {
        for (m, n, k) in [(13, 37, 29), (128, 512, 40), (9, 10, 600), (5, 3, 2), (100, 64, 700)] {
            checkGemm(m: m, n: n, k: k, ta: false, tb: false, accumulate: false, epilogue: epilogue)
            checkGemm(m: m, n: n, k: k, ta: true, tb: true, accumulate: true, epilogue: epilogue)
        }
    }

    /// Products wide enough to pack A (4 panels or more) run strips of every height the kernel has: each row
    /// count here ends in a different mix (7, 13 and 14 rows are 7-row strips with AVX-512).
    @Test("strips of every height against the reference", arguments: [false, true])
    func stripHeights(ta: Bool) {
        let ws = GemmWorkspace()
        for m in [4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 20, 27] {
            checkGemm(m: m, n: 130, k: 37, ta: ta, tb: false, workspace: ws)
            checkGemm(m: m, n: 130, k: 37, ta: ta, tb: true, accumulate: true, epilogue: "biasRelu", workspace: ws)
        }
    }

    @Test("strips cover any row count with at most 3 padding rows; 7-row strips only with AVX-512")
    func stripCover() {
        let tallest = KernelISA.active == .avx512 ? 7 : 6
        for m in 1...200 {
            var heights: [Int] = []
            var left = m
            while left > 0 {
                heights.append(gemmStripHeight(left))
                left -= min(heights.last!, left)
            }
            #expect(heights.allSatisfy { (4...tallest).contains($0) }, "\(m): \(heights)")
            #expect(heights.reduce(0, +) - m <= 3, "\(m): \(heights)")
            // Never more strips than 6-row strips with the remainder padded would take.
            #expect(heights.count <= (m + 5) / 6 + 1, "\(m): \(heights)")
        }
        if KernelISA.active == .avx512 {
            #expect(gemmStripHeight(13) == 7 && gemmStripHeight(6) == 6)
        } else {
            #expect(gemmStripHeight(13) == 5)
        }
    }

    /// n = 40 reads A in place; n = 80 and 130 pack it into strips of 6, 5 and 4 rows whose split moves with
    /// each range (every split point, so every strip height ends a range; 130 packs on AVX-512 too).
    @Test(
        "a row's result does not depend on which other rows are computed with it",
        arguments: [40, 80, 130], [false, true])
    func rowIndependence(n: Int, transposeA: Bool) {
        var rng = Lcg(s: 9)
        let m = 50
        let k = 300
        let a = (0..<m * k).map { _ in rng.next() }
        let b = (0..<k * n).map { _ in rng.next() }
        let workspace = GemmWorkspace()
        func run(_ rows: Range<Int>) -> [Float] {
            productRows(rows, a: a, m: m, k: k, transposeA: transposeA, b: b, n: n, workspace: workspace)
        }
        let all = run(0..<m)
        for split in 1..<m {
            #expect(run(0..<split) + run(split..<m) == all, "split at \(split)")
        }
    }

    /// A narrow layer's weight gradient (Xᵀ·dZ, n ≤ one vector) is computed as its transpose by the wide kernel,
    /// 256 rows at a time: against the reference, and a worker's block of rows (any length, crossing the
    /// 256-row blocks or not, one or two K blocks deep) holds the same bits as the whole product.
    @Test("narrow weight gradients: reference, and any block of rows bit for bit", arguments: [1, 7, 10, 16])
    func narrowTransposed(n: Int) {
        let ws = GemmWorkspace()
        for k in [130, 600] {
            checkGemm(m: 600, n: n, k: k, ta: true, tb: false, workspace: ws)
            checkGemm(m: 9, n: n, k: k, ta: true, tb: true, accumulate: true, epilogue: "bias", workspace: ws)
            var rng = Lcg(s: UInt64(n * k))
            let m = 600
            let x = (0..<k * m).map { _ in rng.next() }
            let dz = (0..<k * n).map { _ in rng.next() }
            func block(_ rows: Range<Int>) -> [Float] {
                productRows(rows, a: x, m: m, k: k, transposeA: true, b: dz, n: n, workspace: ws)
            }
            let all = block(0..<m)
            for rows in [0..<1, 0..<8, 3..<19, 250..<262, 255..<256, 256..<600, 100..<599, 599..<600] {
                #expect(block(rows) == Array(all[rows.lowerBound * n..<rows.upperBound * n]), "rows \(rows), k \(k)")
            }
        }
    }
}

@Suite("GEMM with a fused optimizer update")
struct GemmUpdateTests {
    /// gemmUpdate must leave parameters and slots bit for bit where `gemm` into a gradient buffer followed by
    /// `applyUpdate` leaves them: the engine's determinism does not depend on which path ran.
    @Test(
        "equals gemm then applyUpdate, bit for bit",
        arguments: [
            (100, 512, 128, true), (50, 40, 7, true), (97, 17, 300, false), (6, 33, 512, true), (200, 100, 65, false),
            (13, 512, 128, true), (14, 200, 64, true),
        ])
    func matchesUnfused(shape: (Int, Int, Int, Bool)) {
        let (m, n, k, ta) = shape
        var rng = Lcg(s: UInt64(m * 31 + n))
        let a = AlignedBuffer(count: m * k)
        let b = AlignedBuffer(count: k * n)
        for i in 0..<a.count { a.pointer[i] = rng.next() }
        for i in 0..<b.count { b.pointer[i] = rng.next() }
        let kinds: [UpdateRule.Kind] = [.sgd, .momentum, .rmsprop, .rmspropCenteredMomentum, .adam]
        for kind in kinds {
            // Two copies of parameters and three slots, same starting values.
            let count = m * n
            let buffers = (0..<10).map { _ in AlignedBuffer(count: count) }
            for i in 0..<count {
                let w = rng.next()
                let s0 = abs(rng.next()) + 0.01
                let s1 = rng.next() * 0.1
                let s2 = rng.next() * 0.01
                for (j, v) in [w, s0, s1, s2].enumerated() {
                    buffers[j].pointer[i] = v
                    buffers[5 + j].pointer[i] = v
                }
            }
            let initialW = buffers[0].array
            func rule(_ base: Int) -> UpdateRule {
                UpdateRule(
                    kind: kind, learningRate: 0.01, a: 0.9, b: 0.9, epsilon: 1e-7, alpha: 0.001,
                    parameters: buffers[base].pointer, gradients: buffers[base + 4].pointer,
                    slot0: buffers[base + 1].pointer, slot1: buffers[base + 2].pointer, slot2: buffers[base + 3].pointer
                )
            }
            let lda = ta ? m : k
            gemm(
                m: m, n: n, k: k, a: a.pointer, lda: lda, transposeA: ta, b: b.pointer, ldb: n, transposeB: false,
                c: buffers[4].pointer, ldc: n, workspace: GemmWorkspace())
            applyUpdate(rule(0), 0..<count)
            #expect(gemmUpdateSupports(n: n, k: k))
            gemmUpdate(
                m: m, n: n, k: k, a: a.pointer, lda: lda, transposeA: ta, b: b.pointer, ldb: n,
                transposeB: false, update: rule(5), workspace: GemmWorkspace())
            for j in 0..<4 {
                #expect(
                    buffers[j].array.map(\.bitPattern) == buffers[5 + j].array.map(\.bitPattern),
                    "\(kind), buffer \(j), shape \(shape)")
            }
            #expect(buffers[0].array != initialW, "\(kind): the update moved the parameters")
        }
    }

    @Test("narrow or deep products are not fused")
    func supports() {
        #expect(!gemmUpdateSupports(n: 10, k: 128))
        #expect(!gemmUpdateSupports(n: 512, k: 513))
        #expect(gemmUpdateSupports(n: 17, k: 512))
    }
}

@Suite("GEMM on a B packed beforehand")
struct PackedPanelsTests {
    /// The engine packs ∂L/∂z once per step, each worker its own rows, and every weight-gradient block reads the
    /// packed copy: the product must be bit for bit the one that reads (or packs) B itself, for every K blocking
    /// and panel padding.
    @Test(
        "packPanels by row shards, then gemm and gemmUpdate with packedB: the same bits as without",
        arguments: [
            (12, 512, 128, true), (49, 512, 128, true), (300, 512, 128, true), (6, 10, 128, true),
            (7, 33, 784, false), (20, 100, 1100, true), (96, 17, 64, false), (50, 16, 64, true),
        ])
    func samebits(shape: (Int, Int, Int, Bool)) {
        let (m, n, k, ta) = shape
        var rng = Lcg(s: UInt64(m * 17 + n * 3 + k))
        let a = AlignedBuffer(count: m * k)
        let b = AlignedBuffer(count: k * n)
        for i in 0..<a.count { a.pointer[i] = rng.next() }
        for i in 0..<b.count { b.pointer[i] = rng.next() }
        let packed = AlignedBuffer(count: packedPanelsCount(n: n, k: k))
        for part in 0..<3 {
            packPanels(
                rows: k * part / 3..<k * (part + 1) / 3, k: k, n: n, from: b.pointer, ldb: n, into: packed.pointer)
        }
        let lda = ta ? m : k
        let plain = AlignedBuffer(count: m * n)
        let fromPacked = AlignedBuffer(count: m * n)
        gemm(
            m: m, n: n, k: k, a: a.pointer, lda: lda, transposeA: ta, b: b.pointer, ldb: n, transposeB: false,
            c: plain.pointer, ldc: n, workspace: GemmWorkspace())
        gemm(
            m: m, n: n, k: k, a: a.pointer, lda: lda, transposeA: ta, b: b.pointer, ldb: n, transposeB: false,
            c: fromPacked.pointer, ldc: n, packedB: PackedPanels(packed.pointer, width: n), workspace: GemmWorkspace())
        #expect(plain.array.map(\.bitPattern) == fromPacked.array.map(\.bitPattern), "gemm \(shape)")
        let reference = referenceGemm(m: m, n: n, k: k, a: a.array, lda: lda, ta: ta, b: b.array, ldb: n, tb: false)
        #expect(zip(reference, fromPacked.array).allSatisfy { abs($0 - Double($1)) < 1e-3 }, "\(shape)")
        guard gemmUpdateSupports(n: n, k: k) else { return }
        let params = (0..<4).map { _ in AlignedBuffer(count: m * n) }
        for i in 0..<m * n {
            params[0].pointer[i] = rng.next()
            params[2].pointer[i] = params[0].pointer[i]
        }
        func rule(_ base: Int) -> UpdateRule {
            UpdateRule(
                kind: .rmsprop, learningRate: 0.01, a: 0.9, b: 0.9, epsilon: 1e-7, alpha: 0.001,
                parameters: params[base].pointer, gradients: plain.pointer, slot0: params[base + 1].pointer,
                slot1: params[base + 1].pointer, slot2: params[base + 1].pointer)
        }
        for (base, packedB) in [(0, nil), (2, PackedPanels(packed.pointer, width: n))] {
            gemmUpdate(
                m: m, n: n, k: k, a: a.pointer, lda: lda, transposeA: ta, b: b.pointer, ldb: n, transposeB: false,
                update: rule(base), packedB: packedB, workspace: GemmWorkspace())
        }
        #expect(params[0].array.map(\.bitPattern) == params[2].array.map(\.bitPattern), "gemmUpdate \(shape)")
        #expect(params[1].array.map(\.bitPattern) == params[3].array.map(\.bitPattern), "gemmUpdate slots \(shape)")
    }
}

@Suite("Weights packed by their owners")
struct PackedOperandTests {
    /// A dense layer's W (inputs × units) is packed by the owners of blocks of its rows, for the forward product
    /// X·W (rows of W are its depth) and for the input gradient dZ·Wᵀ (rows of W are its columns); the products
    /// must read the same bits from the packed copies as from W itself, whichever layout their width selects
    /// (register panels, or the dot kernel's padded columns for outputs at most 16 wide), and from any
    /// panel-aligned first column.
    @Test(
        "packOperand by blocks of W's rows, then the forward and input-gradient products: the same bits",
        arguments: [(784, 512), (512, 10), (64, 16), (40, 33), (20, 8), (100, 130)])
    func sameBits(shape: (Int, Int)) {
        let (inputs, units) = shape
        let m = 13
        var rng = Lcg(s: UInt64(inputs * 7 + units))
        let w = AlignedBuffer(count: inputs * units)
        let x = AlignedBuffer(count: m * inputs)
        let dz = AlignedBuffer(count: m * units)
        for b in [w, x, dz] { for i in 0..<b.count { b.pointer[i] = rng.next() } }
        let forward = AlignedBuffer(count: max(1, packedOperandCount(n: units, k: inputs)))
        let transposed = AlignedBuffer(count: max(1, packedOperandCount(n: inputs, k: units)))
        for part in 0..<5 {
            let rows = inputs * part / 5..<inputs * (part + 1) / 5
            packOperand(
                k: inputs, n: units, from: w.pointer, ldb: units, transposed: false, depth: rows,
                columns: 0..<units, into: forward.pointer)
            packOperand(
                k: units, n: inputs, from: w.pointer, ldb: units, transposed: true, depth: 0..<units, columns: rows,
                into: transposed.pointer)
        }
        let lanes = 2 * vecLanes
        for first in Set([0, units >= 2 * lanes ? lanes : 0]) {
            let n = units - first
            let (plain, packed) = (AlignedBuffer(count: m * units), AlignedBuffer(count: m * units))
            for (c, p) in [(plain, nil), (packed, PackedPanels(forward.pointer, width: units, firstColumn: first))] {
                gemm(
                    m: m, n: n, k: inputs, a: x.pointer, lda: inputs, transposeA: false, b: w.pointer + first,
                    ldb: units, transposeB: false, c: c.pointer + first, ldc: units, kernelWidth: units,
                    packedB: p, workspace: GemmWorkspace())
            }
            #expect(plain.array.map(\.bitPattern) == packed.array.map(\.bitPattern), "forward \(shape) from \(first)")
        }
        for first in Set([0, inputs >= 2 * lanes ? lanes : 0]) {
            let n = inputs - first
            let (plain, packed) = (AlignedBuffer(count: m * inputs), AlignedBuffer(count: m * inputs))
            for (c, p) in [(plain, nil), (packed, PackedPanels(transposed.pointer, width: inputs, firstColumn: first))]
            {
                gemm(
                    m: m, n: n, k: units, a: dz.pointer, lda: units, transposeA: false, b: w.pointer + first * units,
                    ldb: units, transposeB: true, c: c.pointer + first, ldc: inputs, kernelWidth: inputs, packedB: p,
                    workspace: GemmWorkspace())
            }
            #expect(plain.array.map(\.bitPattern) == packed.array.map(\.bitPattern), "dx \(shape) from \(first)")
        }
    }

    /// Ranks send the rows of W they updated straight from the forward product's packed copy: the ranges
    /// `packedRowRanges` names for a block of rows must hold exactly what packing that block wrote, blocks of
    /// different rows must not share a float, and `unpackOperand` must give the rows back bit for bit.
    @Test(
        "packedRowRanges covers what packOperand writes for a block of rows; unpackOperand restores the rows",
        arguments: [(784, 512), (1568, 40), (512, 10), (64, 16), (40, 33), (100, 130)])
    func rangesAndUnpack(shape: (Int, Int)) {
        let (inputs, units) = shape
        var rng = Lcg(s: UInt64(inputs * 11 + units))
        let w = AlignedBuffer(count: inputs * units)
        for i in 0..<w.count { w.pointer[i] = rng.next() }
        let count = max(1, packedOperandCount(n: units, k: inputs))
        let packed = AlignedBuffer(count: count)
        let blocks = [0..<inputs / 3, inputs / 3..<inputs / 3 + 7, inputs / 3 + 7..<inputs]
        var owner = [Int](repeating: -1, count: count)
        for (b, rows) in blocks.enumerated() {
            packed.fill(.nan)
            packOperand(
                k: inputs, n: units, from: w.pointer, ldb: units, transposed: false, depth: rows, columns: 0..<units,
                into: packed.pointer)
            let ranges = packedRowRanges(k: inputs, n: units, depth: rows)
            var (unpacked, shared) = (0, 0)
            for r in ranges {
                #expect(r.lowerBound >= 0 && r.upperBound <= count, "\(shape) block \(b): \(r) inside the copy")
                for i in r.clamped(to: 0..<count) {
                    if packed.pointer[i].isNaN { unpacked += 1 }
                    if owner[i] != -1 { shared += 1 }
                    owner[i] = b
                }
            }
            #expect(unpacked == 0, "\(shape) block \(b): \(unpacked) floats named but not packed")
            #expect(shared == 0, "\(shape) block \(b): \(shared) floats named by an earlier block too")
            // Every W value of the block is inside its ranges: as many floats as rows × units at least.
            #expect(ranges.reduce(0) { $0 + $1.count } >= rows.count * units, "\(shape) block \(b): all rows named")
        }
        for rows in blocks {
            packOperand(
                k: inputs, n: units, from: w.pointer, ldb: units, transposed: false, depth: rows, columns: 0..<units,
                into: packed.pointer)
        }
        let back = AlignedBuffer(count: inputs * units)
        back.fill(-1)
        unpackOperand(k: inputs, n: units, from: packed.pointer, depth: blocks[1], into: back.pointer, ldb: units)
        var wrong = 0
        for p in 0..<inputs {
            for j in 0..<units {
                let expected = blocks[1].contains(p) ? w.pointer[p * units + j] : -1
                if back.pointer[p * units + j].bitPattern != expected.bitPattern { wrong += 1 }
            }
        }
        #expect(wrong == 0, "\(shape): \(wrong) values of W not restored exactly (or rows outside the block touched)")
    }
}

/// Rows `rows` of op(A)·B, computed alone: op(A) is m × k, the rows of `a` (k apart) or, transposed, the columns
/// of a k × m `a`; B is k × n.
func productRows(
    _ rows: Range<Int>, a: [Float], m: Int, k: Int, transposeA: Bool, b: [Float], n: Int, workspace: GemmWorkspace
) -> [Float] {
    var c = [Float](repeating: 0, count: rows.count * n)
    a.withUnsafeBufferPointer { ap in
        b.withUnsafeBufferPointer { bp in
            c.withUnsafeMutableBufferPointer { cp in
                gemm(
                    m: rows.count, n: n, k: k,
                    a: ap.baseAddress! + (transposeA ? rows.lowerBound : rows.lowerBound * k),
                    lda: transposeA ? m : k, transposeA: transposeA, b: bp.baseAddress!, ldb: n, transposeB: false,
                    c: cp.baseAddress!, ldc: n, workspace: workspace)
            }
        }
    }
    return c
}
