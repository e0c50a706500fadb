import LoomKernelTypes

#if arch(x86_64)
    import _Builtin_intrinsics.intel
#endif

// GEMM: C[m×n] = op(A)[m×k] · op(B)[k×n] (+ C), with an epilogue fused into the store.
//
// The three products of a dense layer are all this one routine:
//   forward         Y  = X · W          (A = X row-major, B = W row-major)
//   weight gradient dW = Xᵀ · dZ        (A = X read transposed, B = dZ row-major)
//   input gradient  dX = dZ · Wᵀ        (A = dZ row-major, B = W read transposed)
// No transpose is ever materialized: A is read in place through two strides (one of them is 1 either way, so
// every micro-kernel step broadcasts MR contiguous-or-row-streamed scalars), and B is read in place when it is
// row-major with a width that is a multiple of the panel, else packed (transposed, zero-padded) into the
// caller's workspace, panel by panel.
//
// Shape of the computation (GotoBLAS/BLIS, simplified to what measurement kept):
//   for each K block (≤ 512 deep; the same blocks whatever m is, so a row's sum has one fixed order):
//     for each NR-wide panel of B (kc × NR, stays in L1/L2):
//       for each 6-row strip of A:  a 6 × NR register tile of 12 vector accumulators (NR = two vectors)
// `Vec` is the machine's vector: SIMD16<Float> with AVX-512 (NR = 32), SIMD8<Float> with AVX2 (NR = 16); 12
// accumulators + 2 B vectors + 1 broadcast fit both register files (32 zmm, 16 ymm). Narrow outputs (n ≤ one
// vector, e.g. the 10-class layer on AVX-512) use a 12 × 1-vector tile instead, so no lane work is wasted on
// a two-vector panel that would be mostly padding; their weight gradients (A transposed) run as their transpose
// on the wide kernel.
//
// Determinism: every C element is a sum over k in increasing order, split into the same K blocks whatever m, the
// strip or the tile position is. A row's result therefore does not depend on which worker computes it or with
// which other rows — the engine's bitwise independence of the worker count rests on this.

#if LOOM_AVX512
    /// The register vector of the target: one zmm.
    public typealias Vec = SIMD16<Float>
#else
    /// The register vector of the target: one ymm.
    public typealias Vec = SIMD8<Float>
#endif
// Tile constants are computed properties, not global `let`s: a global is initialized lazily and every use in a
// hot loop would go through its accessor (measured: a call per use across modules).
/// Floats per register vector.
public var vecLanes: Int { @inline(__always) get { Vec.scalarCount } }
/// Width of a B panel and of the main register tile.
var nr: Int { @inline(__always) get { 2 * Vec.scalarCount } }
/// Rows of the main register tile.
var mr: Int { @inline(__always) get { 6 } }
/// Rows of the narrow (one-vector-wide) tile.
var mrNarrow: Int { @inline(__always) get { 12 } }

/// The largest packing buffer a product of this shape needs (floats).
func requiredCapacity(n: Int, k: Int) -> Int {
    bCapacity(n: n, k: k) + kBlockSize(k) * (mcBlock + 4)
}
func bCapacity(n: Int, k: Int) -> Int {
    (max(kBlockSize(k) * ((n + nr - 1) / nr) * nr, (k + 2 * vecLanes) * 16) + 15) / 16 * 16
}

var maxKBlock: Int { @inline(__always) get { 512 } }

/// K blocks have equal depth ≤ 512 (784 → 2 × 392), a function of k alone.
@inline(__always) public func kBlockSize(_ k: Int) -> Int {
    let blocks = max(1, (k + maxKBlock - 1) / maxKBlock)
    return (k + blocks - 1) / blocks
}

/// C[m×n] = op(A) · op(B), or C += op(A) · op(B) with `accumulate`, then `epilogue` on the way out.
///
/// `op(A)[i, p]` is `a[i*lda + p]`, or `a[p*lda + i]` with `transposeA`; `op(B)[p, j]` is `b[p*ldb + j]`, or
/// `b[j*ldb + p]` with `transposeB`. C is row-major with row stride `ldc`.
///
/// `kernelWidth` is the width of the whole product when this call computes a block of its columns (a worker's
/// tile): the kernel is chosen by it, so that every element is computed by the same arithmetic whichever tile
/// holds it (the narrow kernels sum in another order than the wide one).
public func gemm(
    m: Int, n: Int, k: Int,
    a: UnsafePointer<Float>, lda: Int, transposeA: Bool,
    b: UnsafePointer<Float>, ldb: Int, transposeB: Bool,
    c: UnsafeMutablePointer<Float>, ldc: Int,
    accumulate: Bool = false, epilogue: GemmEpilogue = .none, kernelWidth: Int? = nil,
    packedB: PackedPanels? = nil, workspace: GemmWorkspace
) {
    gemmCore(
        m: m, n: n, k: k, a: a, lda: lda, transposeA: transposeA, b: b, ldb: ldb, transposeB: transposeB,
        c: c, ldc: ldc, accumulate: accumulate, epilogue: epilogue, update: nil, kernelWidth: kernelWidth ?? n,
        packedB: packedB, workspace: workspace)
}

/// Whether `gemmUpdate` serves a product of this shape: a wide one (n > 16), in one K block (k ≤ 512).
public func gemmUpdateSupports(n: Int, k: Int) -> Bool { n > 16 && k > 0 && k <= maxKBlock }

/// Computes the gradient G[m×n] = op(A) · op(B) and applies the optimizer `update` to it, without ever storing G:
/// parameter i·n + j (counted from the rule's pointers) takes G[i, j]. The product runs block by block of rows;
/// each block's G lands in a workspace scratch that stays in L2 while the rule streams over the block's
/// parameters and optimizer slots (contiguous rows, as a [m × n] weight matrix lies). Compared with storing
/// G (a 1.6 MB matrix for the reference model's first layer) and reading it back in a separate pass, this
/// saves three of the step's memory streams: the store, its read-for-ownership and the re-read.
///
/// The arithmetic is that of `gemm` followed by `applyUpdate` over the same range, value for value (`G` is
/// one K block, summed in the same order), so the result does not depend on which path ran.
/// Requires `gemmUpdateSupports(n:k:)`.
public func gemmUpdate(
    m: Int, n: Int, k: Int,
    a: UnsafePointer<Float>, lda: Int, transposeA: Bool,
    b: UnsafePointer<Float>, ldb: Int, transposeB: Bool,
    update: UpdateRule, packedB: PackedPanels? = nil, workspace: GemmWorkspace
) {
    precondition(gemmUpdateSupports(n: n, k: k), "gemmUpdate: unsupported shape")
    gemmCore(
        m: m, n: n, k: k, a: a, lda: lda, transposeA: transposeA, b: b, ldb: ldb, transposeB: transposeB,
        c: workspace.pointer, ldc: n, accumulate: false, epilogue: .none, update: update, kernelWidth: n,
        packedB: packedB, workspace: workspace)
}

/// Floats of the panels `packPanels` writes for a row-major k × n B: k rows of whole panels.
public func packedPanelsCount(n: Int, k: Int) -> Int { k * ((n + nr - 1) / nr) * nr }

/// How a product reads B: packed into panels (the register-tiled kernels), as zero-padded columns (the dot
/// kernel of products at most 16 wide), or in place (the narrow kernel, one vector wide).
enum ProductLayout { case panels, dot, none }

/// The layout a product of this shape reads B in (`kernelWidth`: the whole product's width, as `gemm` takes it).
@inline(__always) func productLayout(n: Int, k: Int, kernelWidth: Int, transposeA: Bool) -> ProductLayout {
    if kernelWidth <= 16 && !transposeA && k >= 2 * vecLanes { return .dot }
    if kernelWidth <= vecLanes { return .none }
    return .panels
}

/// The depth of one zero-padded column of the dot kernel's B: k and one more vector for the tail.
@inline(__always) func dotDepth(_ k: Int) -> Int { (k / vecLanes + 1) * vecLanes }

/// Floats of op(B) (k × n) packed for a product of this shape (`gemm` with `transposeA` false and this
/// `kernelWidth` = n), 0 when the product reads B in place.
public func packedOperandCount(n: Int, k: Int) -> Int {
    switch productLayout(n: n, k: k, kernelWidth: n, transposeA: false) {
    case .panels: packedPanelsCount(n: n, k: k)
    case .dot: n * dotDepth(k)
    case .none: 0
    }
}

/// Packs op(B)[p, j] for p in `depth`, j in `columns` (op(B)[p, j] = b[p·ldb + j], or b[j·ldb + p] when
/// `transposed`) into the layout a product of width n and depth k reads (`packedOperandCount`), with the
/// padding past n or k when the ranges reach it. Disjoint blocks touch disjoint values: the owners of the rows
/// of a weight matrix each pack theirs, for the forward product (depth) or for the input gradient (columns).
public func packOperand(
    k: Int, n: Int, from b: UnsafePointer<Float>, ldb: Int, transposed: Bool, depth: Range<Int>,
    columns: Range<Int>, into dst: UnsafeMutablePointer<Float>
) {
    @inline(__always) func value(_ p: Int, _ j: Int) -> Float { transposed ? b[j * ldb + p] : b[p * ldb + j] }
    switch productLayout(n: n, k: k, kernelWidth: n, transposeA: false) {
    case .panels:
        if !transposed && columns == 0..<n {
            packPanels(rows: depth, k: k, n: n, from: b, ldb: ldb, into: dst)
            return
        }
        let kc = kBlockSize(k)
        let panels = (n + nr - 1) / nr
        let padded = columns.upperBound == n ? columns.lowerBound..<panels * nr : columns
        // Block by block of K; within one, column by column when B is transposed (each column of op(B) is a
        // contiguous row of b, read once in order), else row by row.
        var p0 = depth.lowerBound / kc * kc
        while p0 < depth.upperBound {
            let kk = min(kc, k - p0)
            let block = dst + p0 * panels * nr
            let rows = max(p0, depth.lowerBound)..<min(p0 + kk, depth.upperBound)
            if transposed {
                var j = padded.lowerBound
                while j < padded.upperBound {
                    // Column j's values at depth p0 onward, nr apart.
                    let out = block + j / nr * kk * nr + j % nr
                    let src = b + j * ldb
                    if j % 8 == 0 && j + 8 <= min(padded.upperBound, n) {
                        // Eight columns (rows of b) at once, eight depths at a time, transposed in registers.
                        var p = rows.lowerBound
                        let l = ldb
                        while p + 8 <= rows.upperBound {
                            let t = transpose8x8(src + p, rowOffsets: (0, l, 2 * l, 3 * l, 4 * l, 5 * l, 6 * l, 7 * l))
                            storeRows8(t, out + (p - p0) * nr, stride: nr)
                            p += 8
                        }
                        for q in p..<rows.upperBound {
                            for c in 0..<8 { out[(q - p0) * nr + c] = src[c * ldb + q] }
                        }
                        j += 8
                    } else {
                        for p in rows { out[(p - p0) * nr] = j < n ? src[p] : 0 }
                        j += 1
                    }
                }
            } else {
                for p in rows {
                    let row = block + (p - p0) * nr
                    for j in padded { row[j / nr * kk * nr + j % nr] = j < n ? value(p, j) : 0 }
                }
            }
            p0 += kk
        }
    case .dot:
        let kp = dotDepth(k)
        for j in columns {
            for p in depth { dst[j * kp + p] = value(p, j) }
            if depth.upperBound == k { for p in k..<kp { dst[j * kp + p] = 0 } }
        }
    case .none: break
    }
}

/// Where row p of a k × n B starts in the panel layout (`packPanels`): its K block's depth `kk`, and the offset
/// of its first panel's `nr` values; panel j's follow at `+ j · kk · nr`.
@inline(__always) func panelRow(_ p: Int, k: Int, n: Int) -> (offset: Int, kk: Int) {
    let kc = kBlockSize(k)
    let p0 = p / kc * kc
    return (p0 * ((n + nr - 1) / nr) * nr + (p - p0) * nr, min(kc, k - p0))
}

/// Where rows `depth` of a k × n B (not transposed) lie in the layout `packOperand` writes for a product n wide
/// and k deep: the contiguous ranges of the packed copy, in order, that hold exactly those rows (with their
/// padding columns). A rank sends the weight rows it updated, already packed, through them.
public func packedRowRanges(k: Int, n: Int, depth: Range<Int>) -> [Range<Int>] {
    var ranges: [Range<Int>] = []
    func add(_ r: Range<Int>) {
        guard !r.isEmpty else { return }
        if let last = ranges.last, last.upperBound == r.lowerBound {
            ranges[ranges.count - 1] = last.lowerBound..<r.upperBound
        } else {
            ranges.append(r)
        }
    }
    switch productLayout(n: n, k: k, kernelWidth: n, transposeA: false) {
    case .panels:
        let kc = kBlockSize(k)
        let panels = (n + nr - 1) / nr
        var p0 = depth.lowerBound / kc * kc
        while p0 < depth.upperBound {
            let kk = min(kc, k - p0)
            let rows = max(p0, depth.lowerBound)..<min(p0 + kk, depth.upperBound)
            for panel in 0..<panels {
                let start = p0 * panels * nr + panel * kk * nr + (rows.lowerBound - p0) * nr
                add(start..<start + rows.count * nr)
            }
            p0 += kk
        }
    case .dot:
        let kp = dotDepth(k)
        for j in 0..<n { add(j * kp + depth.lowerBound..<j * kp + depth.upperBound) }
    case .none: break
    }
    return ranges
}

/// The inverse of `packOperand` for B not transposed: b[p·ldb + j] for p in `depth` and j < n, read back from
/// the packed copy (which holds the same values): how a rank rebuilds the rows other ranks sent packed.
public func unpackOperand(
    k: Int, n: Int, from packed: UnsafePointer<Float>, depth: Range<Int>, into b: UnsafeMutablePointer<Float>,
    ldb: Int
) {
    switch productLayout(n: n, k: k, kernelWidth: n, transposeA: false) {
    case .panels:
        for p in depth {
            let (offset, kk) = panelRow(p, k: k, n: n)
            for panel in 0..<(n + nr - 1) / nr {
                let j0 = panel * nr
                (b + p * ldb + j0).update(from: packed + offset + panel * kk * nr, count: min(nr, n - j0))
            }
        }
    case .dot:
        let kp = dotDepth(k)
        for p in depth {
            for j in 0..<n { b[p * ldb + j] = packed[j * kp + p] }
        }
    case .none: break
    }
}

/// Packs rows `rows` of a row-major k × n matrix B (row p at `b + p·ldb`) into the panels that `gemm` and
/// `gemmUpdate` read through `packedB` instead of packing B themselves: the K block starting at p0 (depth kk,
/// as `kBlockSize(k)` cuts k) begins at `p0 · panels · nr`, its panel j at `+ j · kk · nr`, each `kk × nr`
/// values zero-padded past n — what the product's own `packB` writes, so the product's values are the same.
/// Disjoint row ranges touch disjoint values: workers can pack their own rows of one B side by side.
public func packPanels(
    rows: Range<Int>, k: Int, n: Int, from b: UnsafePointer<Float>, ldb: Int, into dst: UnsafeMutablePointer<Float>
) {
    let panels = (n + nr - 1) / nr
    for p in rows {
        let (offset, kk) = panelRow(p, k: k, n: n)
        let row = dst + offset
        let src = b + p * ldb
        for panel in 0..<panels {
            let j0 = panel * nr
            let out = row + panel * kk * nr
            if j0 + nr <= n {
                storeVec(loadVec(src + j0), out)
                storeVec(loadVec(src + j0 + vecLanes), out + vecLanes)
            } else {
                for jj in 0..<nr { out[jj] = j0 + jj < n ? src[j0 + jj] : 0 }
            }
        }
    }
}

/// Rows of G per block of `gemmUpdate`: a multiple of the tile height, the block's G at most 96 KB (L2 keeps
/// it beside the packed B panels while the update streams).
@inline(__always) func fusedBlockRows(n: Int) -> Int { max(mr, min(mcBlock, 24_576 / n / mr * mr)) }

@inline(__always)
func gemmCore(
    m: Int, n: Int, k: Int,
    a: UnsafePointer<Float>, lda: Int, transposeA: Bool,
    b: UnsafePointer<Float>, ldb: Int, transposeB: Bool,
    c: UnsafeMutablePointer<Float>, ldc: Int,
    accumulate: Bool, epilogue: GemmEpilogue, update: UpdateRule?, kernelWidth: Int,
    packedB: PackedPanels?, workspace: GemmWorkspace
) {
    if m == 0 || n == 0 { return }
    if k == 0 {
        for i in 0..<m {
            storeEpilogueScalar(
                c + i * ldc, count: n, row: i, col: 0, accumulate: accumulate,
                epilogue: epilogue
            ) { _ in 0 }
        }
        return
    }
    workspace.reserve(requiredCapacity(n: n, k: k) + (update != nil ? fusedBlockRows(n: n) * n : 0))
    switch productLayout(n: n, k: k, kernelWidth: kernelWidth, transposeA: transposeA) {
    case .dot:
        dotGemm(
            m: m, n: n, k: k, a: a, lda: lda, b: b, ldb: ldb, transposeB: transposeB, c: c, ldc: ldc,
            accumulate: accumulate, epilogue: epilogue, packed: packedB, workspace: workspace)
        return
    case .panels, .none: break
    }
    // (No update is fused into a product this narrow: `gemmUpdateSupports`.)
    if kernelWidth <= vecLanes && transposeA {
        transposedNarrowGemm(
            m: m, n: n, k: k, a: a, lda: lda, b: b, ldb: ldb, transposeB: transposeB, c: c, ldc: ldc,
            accumulate: accumulate, epilogue: epilogue, workspace: workspace)
        return
    }
    if kernelWidth <= vecLanes {
        narrowGemm(
            m: m, n: n, k: k, a: a, lda: lda, b: b, ldb: ldb, transposeB: transposeB, c: c, ldc: ldc,
            accumulate: accumulate, epilogue: epilogue, workspace: workspace)
        return
    }
    let kc = kBlockSize(k)
    let panels = (n + nr - 1) / nr
    // B is read in place only for short products: a row-major B's panel rows lie ldb floats apart (2 KB for
    // N = 512), so a panel cannot stay in L1 (its lines fall in two sets); packing it costs k·n once per call
    // and pays back once many strips of A reuse each panel (best of 4 here: the weight gradient, m = 784,
    // 78 vs 75 GFLOP/s packed; the forward, m = 128, 76.5 vs 71.6 direct).
    // A B packed beforehand (`packPanels`, shared by the workers of a step) is read as it lies, from the panel
    // of the product's first column.
    let packedB = packedB.flatMap { $0.firstColumn % nr == 0 ? $0 : nil }
    let packedPanels = packedB.map { ($0.width + nr - 1) / nr } ?? panels
    let packedFirstPanel = packedB.map { $0.firstColumn / nr } ?? 0
    let direct = packedB == nil && !transposeB && n % nr == 0 && m < 256 && ldb <= 1024
    let packedA = workspace.pointer + bCapacity(n: n, k: k)
    // With a fused update, each block of rows of C is computed into a scratch after the packing buffers (row
    // stride n), then consumed by the rule.
    let blockRows = update != nil ? fusedBlockRows(n: n) : mcBlock
    let scratch = packedA + kBlockSize(k) * (mcBlock + 4)
    // Packing A costs m·k per K block; it pays once several panels reuse it (measured: n = 10 loses 3x with it).
    let packingA = panels >= 4
    var p0 = 0
    while p0 < k {
        let kk = min(kc, k - p0)
        let last = p0 + kk == k
        let accumulateBlock = accumulate || p0 > 0
        let blockEpilogue: GemmEpilogue = last ? epilogue : .none
        if !direct && packedB == nil {
            packB(k: kk, n: n, from: b, ldb: ldb, transposed: transposeB, p0: p0, into: workspace.pointer)
        }
        let bBlock =
            packedB.map { $0.base + p0 * packedPanels * nr + packedFirstPanel * kk * nr }
            ?? UnsafePointer(workspace.pointer)
        var ic = 0
        while ic < m {
            let mc = min(blockRows, m - ic)
            // Where row ic of this block is stored: in C, or (fused update) at the scratch's first row.
            let cBlock = update != nil ? scratch : c + ic * ldc
            if packingA {
                packA(m: mc, k: kk, from: a, lda: lda, transposed: transposeA, i0: ic, p0: p0, into: packedA)
            }
            for panel in 0..<panels {
                let j0 = panel * nr
                let cols = min(nr, n - j0)
                let bPanel = direct ? b + p0 * ldb + j0 : bBlock + panel * kk * nr
                let bStride = direct ? ldb : nr
                var i0 = 0
                while i0 < mc {
                    let height = packingA ? stripHeight(mc - i0) : mr
                    let rows = min(height, mc - i0)
                    let cTile = cBlock + i0 * ldc + j0
                    if packingA && height != mr {
                        // The other strips, each height its own copy of the tile (a constant, unrolled).
                        #if LOOM_AVX512
                            if height == 7 {
                                tallTile(
                                    k: kk, a: packedA + i0 * kk, rows: rows, b: bPanel, bK: bStride, c: cTile,
                                    ldc: ldc, cols: cols, row: ic + i0, col: j0, accumulate: accumulateBlock,
                                    epilogue: blockEpilogue)
                                i0 += height
                                continue
                            }
                        #endif
                        if height == 4 {
                            shortTile(
                                height: 4, k: kk, a: packedA + i0 * kk, rows: rows, b: bPanel, bK: bStride,
                                c: cTile, ldc: ldc, cols: cols, row: ic + i0, col: j0,
                                accumulate: accumulateBlock, epilogue: blockEpilogue)
                        } else {
                            shortTile(
                                height: 5, k: kk, a: packedA + i0 * kk, rows: rows, b: bPanel, bK: bStride,
                                c: cTile, ldc: ldc, cols: cols, row: ic + i0, col: j0,
                                accumulate: accumulateBlock, epilogue: blockEpilogue)
                        }
                    } else if packingA {
                        wideTile(
                            k: kk, a: packedA + i0 * kk, aRow: 1, aK: mr, rows: rows, b: bPanel, bK: bStride,
                            c: cTile, ldc: ldc, cols: cols, row: ic + i0, col: j0,
                            accumulate: accumulateBlock, epilogue: blockEpilogue)
                    } else if transposeA {
                        wideTile(
                            k: kk, a: a + p0 * lda + ic + i0, aRow: 1, aK: lda, rows: rows, b: bPanel,
                            bK: bStride, c: cTile, ldc: ldc, cols: cols, row: ic + i0, col: j0,
                            accumulate: accumulateBlock, epilogue: blockEpilogue)
                    } else {
                        wideTile(
                            k: kk, a: a + (ic + i0) * lda + p0, aRow: lda, aK: 1, rows: rows, b: bPanel,
                            bK: bStride, c: cTile, ldc: ldc, cols: cols, row: ic + i0, col: j0,
                            accumulate: accumulateBlock, epilogue: blockEpilogue)
                    }
                    i0 += height
                }
            }
            if let update {
                // The block's gradient is complete (one K block): apply the rule to parameters ic..<ic+mc rows.
                var rule = update.advanced(by: ic * n)
                rule.gradients = scratch
                applyUpdate(rule, 0..<mc * n)
            }
            ic += mc
        }
        p0 += kk
    }
}

/// Rows of A packed at once: an mc × kc block (≤ 96 × 512 floats, 192 KB) stays in L2 while every B panel
/// passes over it.
var mcBlock: Int { @inline(__always) get { 96 } }

/// The height of the next strip of packed A when `remaining` rows are left: 6 (the main tile), or 4, 5 (or 7,
/// with AVX-512's 32 registers) where that avoids computing rows past the end or a third strip. Strips of 4, 5
/// and 6 rows cover any count but 7 exactly: 128 rows are 20 × 6 + 2 × 4 rather than 22 × 6 (132 rows' work).
/// 13 rows (a worker's weight-gradient block of 784 rows at 61 workers) are 7 + 6 with AVX-512, 5 + 4 + 4 with
/// AVX2 (whose 16 registers hold at most 12 accumulators), and 14 are 7 + 7 rather than 6 + 4 + 4: each strip
/// streams the B panel once more. Every element of C is the same FMA chain whatever tile computes it, so the
/// split changes no value.
@inline(__always) public func stripHeight(_ remaining: Int) -> Int {
    #if LOOM_AVX512
        switch remaining {
        case ...4, 8: 4
        case 5, 9: 5
        case 7, 13, 14: 7
        default: mr
        }
    #else
        switch remaining {
        case ...4, 7, 8: 4
        case 5, 9, 13: 5
        default: mr
        }
    #endif
}

/// Packs rows i0..<i0+m, depth p0..<p0+k of op(A) into strips of `stripHeight` rows (4 to 7), each
/// `k × height` contiguous (the order the micro-kernel broadcasts them), repeating the last row past m.
@inline(__always)
func packA(
    m: Int, k: Int, from a: UnsafePointer<Float>, lda: Int, transposed: Bool, i0: Int, p0: Int,
    into dst: UnsafeMutablePointer<Float>
) {
    var s = 0
    while s < m {
        let height = stripHeight(m - s)
        let last = min(height, m - s) - 1
        let out = dst + s * k
        var p = 0
        if transposed {
            // op(A)[i, p] = a[p*lda + i]: the strip's values at depth p are contiguous in the source.
            if s + 8 <= m {
                // 8-float copies, each overlapping the next depth's first values, which the next copy overwrites
                // (8 - height ≤ 4 < height of them; the last depth copies its values one by one).
                while p < k - 1 {
                    storeVec8(loadVec8(a + (p0 + p) * lda + i0 + s), out + p * height)
                    p += 1
                }
            }
            for q in p..<k {
                let src = a + (p0 + q) * lda + i0 + s
                for r in 0..<height { out[q * height + r] = src[min(r, last)] }
            }
        } else {
            // op(A)[i, p] = a[i*lda + p]: 8 depths of the strip's rows at a time, transposed in registers (the
            // scalar loop's strided stores cost 3–4% of the forward product); the depth tail one by one.
            let src0 = a + (i0 + s) * lda + p0
            while p + 8 <= k {
                let t = transpose8x8(
                    src0 + p,
                    rowOffsets: (
                        0, min(1, last) * lda, min(2, last) * lda, min(3, last) * lda,
                        min(4, last) * lda, min(5, last) * lda, min(6, last) * lda,
                        min(7, last) * lda
                    ))
                // Depth p+c's values are the first `height` lanes of t.c; each store's other lanes land on the
                // next depth's first values and are overwritten by the next store (the last stores its own only).
                let o = out + p * height
                storeVec8(t.0, o)
                storeVec8(t.1, o + height)
                storeVec8(t.2, o + 2 * height)
                storeVec8(t.3, o + 3 * height)
                storeVec8(t.4, o + 4 * height)
                storeVec8(t.5, o + 5 * height)
                storeVec8(t.6, o + 6 * height)
                for r in 0..<height { o[7 * height + r] = t.7[r] }
                p += 8
            }
            for r in 0..<height {
                let src = a + (i0 + s + min(r, last)) * lda + p0
                for q in p..<k { out[q * height + r] = src[q] }
            }
        }
        s += height
    }
}

@inline(__always) func loadVec8(_ p: UnsafePointer<Float>) -> SIMD8<Float> {
    UnsafeRawPointer(p).loadUnaligned(as: SIMD8<Float>.self)
}
@inline(__always) func storeVec8(_ v: SIMD8<Float>, _ p: UnsafeMutablePointer<Float>) {
    UnsafeMutableRawPointer(p).storeBytes(of: v, as: SIMD8<Float>.self)
}

/// Stores the 8 rows of a `transpose8x8` result `stride` floats apart from `o` (into a packed panel).
@inline(__always)
func storeRows8(
    _ t: (
        SIMD8<Float>, SIMD8<Float>, SIMD8<Float>, SIMD8<Float>, SIMD8<Float>, SIMD8<Float>, SIMD8<Float>, SIMD8<Float>
    ),
    _ o: UnsafeMutablePointer<Float>, stride: Int
) {
    storeVec8(t.0, o)
    storeVec8(t.1, o + stride)
    storeVec8(t.2, o + 2 * stride)
    storeVec8(t.3, o + 3 * stride)
    storeVec8(t.4, o + 4 * stride)
    storeVec8(t.5, o + 5 * stride)
    storeVec8(t.6, o + 6 * stride)
    storeVec8(t.7, o + 7 * stride)
}

/// Loads 8 floats from each of 8 rows (`base + rowOffsets.i`) and returns the 8 × 8 block transposed: result c
/// holds element c of every row. Three rounds of interleaves (32-bit, 64-bit, 128-bit halves): 24 shuffles
/// for 64 values, where a scalar copy takes 64 loads and 64 stores.
@inline(__always)
func transpose8x8(_ base: UnsafePointer<Float>, rowOffsets o: (Int, Int, Int, Int, Int, Int, Int, Int))
    -> (SIMD8<Float>, SIMD8<Float>, SIMD8<Float>, SIMD8<Float>, SIMD8<Float>, SIMD8<Float>, SIMD8<Float>, SIMD8<Float>)
{
    let r0 = loadVec8(base + o.0)
    let r1 = loadVec8(base + o.1)
    let r2 = loadVec8(base + o.2)
    let r3 = loadVec8(base + o.3)
    let r4 = loadVec8(base + o.4)
    let r5 = loadVec8(base + o.5)
    let r6 = loadVec8(base + o.6)
    let r7 = loadVec8(base + o.7)
    #if arch(x86_64)
        func ps(_ v: SIMD8<Float>) -> __m256 { v }  // the same type in Swift; named for the intrinsics
        func pd(_ v: __m256) -> __m256d { unsafeBitCast(v, to: __m256d.self) }
        func v8(_ v: __m256d) -> SIMD8<Float> { unsafeBitCast(v, to: SIMD8<Float>.self) }
        // t: pairs of rows interleaved element by element, within each 128-bit half.
        let t0 = pd(_mm256_unpacklo_ps(ps(r0), ps(r1)))
        let t1 = pd(_mm256_unpackhi_ps(ps(r0), ps(r1)))
        let t2 = pd(_mm256_unpacklo_ps(ps(r2), ps(r3)))
        let t3 = pd(_mm256_unpackhi_ps(ps(r2), ps(r3)))
        let t4 = pd(_mm256_unpacklo_ps(ps(r4), ps(r5)))
        let t5 = pd(_mm256_unpackhi_ps(ps(r4), ps(r5)))
        let t6 = pd(_mm256_unpacklo_ps(ps(r6), ps(r7)))
        let t7 = pd(_mm256_unpackhi_ps(ps(r6), ps(r7)))
        // u: columns (c | c+4) of rows 0–3 (u0…u3) and of rows 4–7 (u4…u7).
        let u0 = v8(_mm256_unpacklo_pd(t0, t2))
        let u1 = v8(_mm256_unpackhi_pd(t0, t2))
        let u2 = v8(_mm256_unpacklo_pd(t1, t3))
        let u3 = v8(_mm256_unpackhi_pd(t1, t3))
        let u4 = v8(_mm256_unpacklo_pd(t4, t6))
        let u5 = v8(_mm256_unpackhi_pd(t4, t6))
        let u6 = v8(_mm256_unpacklo_pd(t5, t7))
        let u7 = v8(_mm256_unpackhi_pd(t5, t7))
        return (
            SIMD8(lowHalf: u0.lowHalf, highHalf: u4.lowHalf), SIMD8(lowHalf: u1.lowHalf, highHalf: u5.lowHalf),
            SIMD8(lowHalf: u2.lowHalf, highHalf: u6.lowHalf), SIMD8(lowHalf: u3.lowHalf, highHalf: u7.lowHalf),
            SIMD8(lowHalf: u0.highHalf, highHalf: u4.highHalf), SIMD8(lowHalf: u1.highHalf, highHalf: u5.highHalf),
            SIMD8(lowHalf: u2.highHalf, highHalf: u6.highHalf), SIMD8(lowHalf: u3.highHalf, highHalf: u7.highHalf)
        )
    #else
        let rows = [r0, r1, r2, r3, r4, r5, r6, r7]
        func column(_ c: Int) -> SIMD8<Float> { SIMD8((0..<8).map { rows[$0][c] }) }
        return (column(0), column(1), column(2), column(3), column(4), column(5), column(6), column(7))
    #endif
}

/// Packs rows p0..<p0+k of op(B) into NR-wide panels, each `k × NR` contiguous, zero-padded past n.
@inline(__always)
func packB(
    k: Int, n: Int, from b: UnsafePointer<Float>, ldb: Int, transposed: Bool, p0: Int,
    into dst: UnsafeMutablePointer<Float>
) {
    let panels = (n + nr - 1) / nr
    if !transposed {
        // op(B)[p, j] = b[p*ldb + j]: row by row, each row read whole and in order into every panel. (Panel by
        // panel, a B read once from memory — a narrow weight gradient's input — came a line per row, ldb floats
        // apart: its 683-row block on 32 workers, wide model, took 270 µs against 220 this way, Zen 4.)
        for p in 0..<k {
            let src = b + (p0 + p) * ldb
            for panel in 0..<panels {
                let j0 = panel * nr
                let row = dst + panel * k * nr + p * nr
                if j0 + nr <= n {
                    storeVec(loadVec(src + j0), row)
                    storeVec(loadVec(src + j0 + vecLanes), row + vecLanes)
                } else {
                    for jj in 0..<nr { row[jj] = j0 + jj < n ? src[j0 + jj] : 0 }
                }
            }
        }
        return
    }
    for panel in 0..<panels {
        let j0 = panel * nr
        let cols = min(nr, n - j0)
        let out = dst + panel * k * nr
        // op(B)[p, j] = b[j*ldb + p]: write the panel row by row (contiguous stores), reading the panel's
        // `cols` source rows side by side — each source line then serves 16 consecutive p from L1
        // (best of 4 in one sitting, 128×784×512: 81.5 vs 61.0 GFLOP/s with the scattering loop it replaced).
        let src = b + j0 * ldb + p0
        var p = 0
        if cols == nr {
            // Whole panels: 8 × 8 blocks transposed in registers (8 source rows, 8 depths).
            while p + 8 <= k {
                var jb = 0
                while jb < nr {
                    let t = transpose8x8(
                        src + jb * ldb + p,
                        rowOffsets: (
                            0, ldb, 2 * ldb, 3 * ldb, 4 * ldb, 5 * ldb,
                            6 * ldb, 7 * ldb
                        ))
                    storeRows8(t, out + p * nr + jb, stride: nr)
                    jb += 8
                }
                p += 8
            }
        }
        for q in p..<k {
            let row = out + q * nr
            for jj in 0..<cols { row[jj] = src[jj * ldb + q] }
            for jj in cols..<nr { row[jj] = 0 }
        }
    }
}

@inline(__always) func loadVec(_ p: UnsafePointer<Float>) -> Vec {
    UnsafeRawPointer(p).loadUnaligned(as: Vec.self)
}
@inline(__always) func storeVec(_ v: Vec, _ p: UnsafeMutablePointer<Float>) {
    UnsafeMutableRawPointer(p).storeBytes(of: v, as: Vec.self)
}

/// The 6 × NR register tile: 12 vector accumulators; each k step loads two B vectors and broadcasts 6 A values
/// (from a packed strip: aRow 1, aK 6; or in place). Rows past `rows` repeat the last valid row (same
/// arithmetic, never stored).
@inline(__always)
func wideTile(
    k: Int, a: UnsafePointer<Float>, aRow: Int, aK: Int, rows: Int,
    b: UnsafePointer<Float>, bK: Int,
    c: UnsafeMutablePointer<Float>, ldc: Int, cols: Int, row: Int, col: Int,
    accumulate: Bool, epilogue: GemmEpilogue
) {
    let last = rows - 1
    let a0 = a
    let a1 = a + min(1, last) * aRow
    let a2 = a + min(2, last) * aRow
    let a3 = a + min(3, last) * aRow
    let a4 = a + min(4, last) * aRow
    let a5 = a + min(5, last) * aRow
    var c00 = Vec()
    var c01 = Vec()
    var c10 = Vec()
    var c11 = Vec()
    var c20 = Vec()
    var c21 = Vec()
    var c30 = Vec()
    var c31 = Vec()
    var c40 = Vec()
    var c41 = Vec()
    var c50 = Vec()
    var c51 = Vec()
    var bp = b
    var ap = 0
    for _ in 0..<k {
        let b0 = loadVec(bp)
        let b1 = loadVec(bp + vecLanes)
        var x = Vec(repeating: a0[ap])
        c00 = c00.addingProduct(x, b0)
        c01 = c01.addingProduct(x, b1)
        x = Vec(repeating: a1[ap])
        c10 = c10.addingProduct(x, b0)
        c11 = c11.addingProduct(x, b1)
        x = Vec(repeating: a2[ap])
        c20 = c20.addingProduct(x, b0)
        c21 = c21.addingProduct(x, b1)
        x = Vec(repeating: a3[ap])
        c30 = c30.addingProduct(x, b0)
        c31 = c31.addingProduct(x, b1)
        x = Vec(repeating: a4[ap])
        c40 = c40.addingProduct(x, b0)
        c41 = c41.addingProduct(x, b1)
        x = Vec(repeating: a5[ap])
        c50 = c50.addingProduct(x, b0)
        c51 = c51.addingProduct(x, b1)
        bp += bK
        ap += aK
    }
    if rows == mr, let (bias, relu, mask, maskLd) = rowEpilogue(epilogue, cols: cols, row: row, col: col) {
        storeFullTile(
            (c00, c01, c10, c11, c20, c21, c30, c31, c40, c41, c50, c51), rows: mr, c, ldc: ldc,
            accumulate: accumulate, bias: bias, relu: relu, mask: mask, maskLd: maskLd)
        return
    }
    storeRow(c00, c01, c, cols: cols, row: row, col: col, accumulate: accumulate, epilogue: epilogue)
    if rows > 1 {
        storeRow(c10, c11, c + ldc, cols: cols, row: row + 1, col: col, accumulate: accumulate, epilogue: epilogue)
    }
    if rows > 2 {
        storeRow(c20, c21, c + 2 * ldc, cols: cols, row: row + 2, col: col, accumulate: accumulate, epilogue: epilogue)
    }
    if rows > 3 {
        storeRow(c30, c31, c + 3 * ldc, cols: cols, row: row + 3, col: col, accumulate: accumulate, epilogue: epilogue)
    }
    if rows > 4 {
        storeRow(c40, c41, c + 4 * ldc, cols: cols, row: row + 4, col: col, accumulate: accumulate, epilogue: epilogue)
    }
    if rows > 5 {
        storeRow(c50, c51, c + 5 * ldc, cols: cols, row: row + 5, col: col, accumulate: accumulate, epilogue: epilogue)
    }
}

/// The 4 × NR or 5 × NR tile for short strips of packed A (`height` values per depth, a constant at each call):
/// 8 or 10 accumulators, enough to keep both FMA pipes busy (4 cycles latency × 2), with the same per-element
/// FMA chain as `wideTile`.
@inline(__always)
func shortTile(
    height: Int, k: Int, a: UnsafePointer<Float>, rows: Int, b: UnsafePointer<Float>, bK: Int,
    c: UnsafeMutablePointer<Float>, ldc: Int, cols: Int, row: Int, col: Int,
    accumulate: Bool, epilogue: GemmEpilogue
) {
    var c00 = Vec()
    var c01 = Vec()
    var c10 = Vec()
    var c11 = Vec()
    var c20 = Vec()
    var c21 = Vec()
    var c30 = Vec()
    var c31 = Vec()
    var c40 = Vec()
    var c41 = Vec()
    var bp = b
    var ap = a
    for _ in 0..<k {
        let b0 = loadVec(bp)
        let b1 = loadVec(bp + vecLanes)
        var x = Vec(repeating: ap[0])
        c00 = c00.addingProduct(x, b0)
        c01 = c01.addingProduct(x, b1)
        x = Vec(repeating: ap[1])
        c10 = c10.addingProduct(x, b0)
        c11 = c11.addingProduct(x, b1)
        x = Vec(repeating: ap[2])
        c20 = c20.addingProduct(x, b0)
        c21 = c21.addingProduct(x, b1)
        x = Vec(repeating: ap[3])
        c30 = c30.addingProduct(x, b0)
        c31 = c31.addingProduct(x, b1)
        if height == 5 {
            x = Vec(repeating: ap[4])
            c40 = c40.addingProduct(x, b0)
            c41 = c41.addingProduct(x, b1)
        }
        bp += bK
        ap += height
    }
    if rows == height, let (bias, relu, mask, maskLd) = rowEpilogue(epilogue, cols: cols, row: row, col: col) {
        storeFullTile(
            (c00, c01, c10, c11, c20, c21, c30, c31, c40, c41), rows: height, c, ldc: ldc,
            accumulate: accumulate, bias: bias, relu: relu, mask: mask, maskLd: maskLd)
        return
    }
    storeRow(c00, c01, c, cols: cols, row: row, col: col, accumulate: accumulate, epilogue: epilogue)
    if rows > 1 {
        storeRow(c10, c11, c + ldc, cols: cols, row: row + 1, col: col, accumulate: accumulate, epilogue: epilogue)
    }
    if rows > 2 {
        storeRow(c20, c21, c + 2 * ldc, cols: cols, row: row + 2, col: col, accumulate: accumulate, epilogue: epilogue)
    }
    if rows > 3 {
        storeRow(c30, c31, c + 3 * ldc, cols: cols, row: row + 3, col: col, accumulate: accumulate, epilogue: epilogue)
    }
    if rows > 4 {
        storeRow(c40, c41, c + 4 * ldc, cols: cols, row: row + 4, col: col, accumulate: accumulate, epilogue: epilogue)
    }
}

#if LOOM_AVX512
    /// The 7 × NR tile for 7-row strips of packed A (AVX-512 only: 14 accumulators, 2 B vectors and a broadcast
    /// take 17 of its 32 registers), with the same per-element FMA chain as `wideTile`. Not inlined: in the
    /// products' loop beside the other tiles it made the register allocator slow the 6-row tile down. And its own
    /// copy of `shortTile`'s loop on purpose: `shortTile` grown to 14 accumulators (a non-inlined wrapper at
    /// height 7) slowed the book's one-worker step by 5% even at heights 4 and 5 (`loom bench step`, Zen 4: 2.35
    /// against 2.22 ms, 3 alternated rounds).
    @inline(never)
    func tallTile(
        k: Int, a: UnsafePointer<Float>, rows: Int, b: UnsafePointer<Float>, bK: Int,
        c: UnsafeMutablePointer<Float>, ldc: Int, cols: Int, row: Int, col: Int,
        accumulate: Bool, epilogue: GemmEpilogue
    ) {
        var c00 = Vec()
        var c01 = Vec()
        var c10 = Vec()
        var c11 = Vec()
        var c20 = Vec()
        var c21 = Vec()
        var c30 = Vec()
        var c31 = Vec()
        var c40 = Vec()
        var c41 = Vec()
        var c50 = Vec()
        var c51 = Vec()
        var c60 = Vec()
        var c61 = Vec()
        var bp = b
        var ap = a
        for _ in 0..<k {
            let b0 = loadVec(bp)
            let b1 = loadVec(bp + vecLanes)
            var x = Vec(repeating: ap[0])
            c00 = c00.addingProduct(x, b0)
            c01 = c01.addingProduct(x, b1)
            x = Vec(repeating: ap[1])
            c10 = c10.addingProduct(x, b0)
            c11 = c11.addingProduct(x, b1)
            x = Vec(repeating: ap[2])
            c20 = c20.addingProduct(x, b0)
            c21 = c21.addingProduct(x, b1)
            x = Vec(repeating: ap[3])
            c30 = c30.addingProduct(x, b0)
            c31 = c31.addingProduct(x, b1)
            x = Vec(repeating: ap[4])
            c40 = c40.addingProduct(x, b0)
            c41 = c41.addingProduct(x, b1)
            x = Vec(repeating: ap[5])
            c50 = c50.addingProduct(x, b0)
            c51 = c51.addingProduct(x, b1)
            x = Vec(repeating: ap[6])
            c60 = c60.addingProduct(x, b0)
            c61 = c61.addingProduct(x, b1)
            bp += bK
            ap += 7
        }
        if rows == 7, let (bias, relu, mask, maskLd) = rowEpilogue(epilogue, cols: cols, row: row, col: col) {
            storeFullTile(
                (c00, c01, c10, c11, c20, c21, c30, c31, c40, c41, c50, c51, c60, c61),
                rows: 7, c, ldc: ldc, accumulate: accumulate, bias: bias, relu: relu, mask: mask, maskLd: maskLd)
            return
        }
        storeRow(c00, c01, c, cols: cols, row: row, col: col, accumulate: accumulate, epilogue: epilogue)
        if rows > 1 {
            storeRow(c10, c11, c + ldc, cols: cols, row: row + 1, col: col, accumulate: accumulate, epilogue: epilogue)
        }
        if rows > 2 {
            storeRow(
                c20, c21, c + 2 * ldc, cols: cols, row: row + 2, col: col, accumulate: accumulate, epilogue: epilogue)
        }
        if rows > 3 {
            storeRow(
                c30, c31, c + 3 * ldc, cols: cols, row: row + 3, col: col, accumulate: accumulate, epilogue: epilogue)
        }
        if rows > 4 {
            storeRow(
                c40, c41, c + 4 * ldc, cols: cols, row: row + 4, col: col, accumulate: accumulate, epilogue: epilogue)
        }
        if rows > 5 {
            storeRow(
                c50, c51, c + 5 * ldc, cols: cols, row: row + 5, col: col, accumulate: accumulate, epilogue: epilogue)
        }
        if rows > 6 {
            storeRow(
                c60, c61, c + 6 * ldc, cols: cols, row: row + 6, col: col, accumulate: accumulate, epilogue: epilogue)
        }
    }
#endif

/// For a tile whose rows are all full (`cols` = NR): the epilogue as the tile's rows apply it inline — the bias
/// vectors (or nil), whether relu follows, and the relu mask's first row (or nil) and row stride.
@inline(__always)
func rowEpilogue(_ epilogue: GemmEpilogue, cols: Int, row: Int, col: Int)
    -> (bias: (Vec, Vec)?, relu: Bool, mask: UnsafePointer<Float>?, maskLd: Int)?
{
    guard cols == nr else { return nil }
    switch epilogue {
    case .none: return (nil, false, nil, 0)
    case .bias(let b): return ((loadVec(b + col), loadVec(b + col + vecLanes)), false, nil, 0)
    case .biasRelu(let b): return ((loadVec(b + col), loadVec(b + col + vecLanes)), true, nil, 0)
    case .reluMask(let m, let ld): return (nil, false, m + row * ld + col, ld)
    }
}

/// Stores the `rows` full rows of a tile whose accumulators are `accs` (two vectors a row, in row order): one
/// loop over `storeFullRow`, so the tile inlines one copy of the epilogue rather than one per row.
@inline(__always)
func storeFullTile<Accumulators>(
    _ accs: Accumulators, rows: Int, _ c: UnsafeMutablePointer<Float>, ldc: Int,
    accumulate: Bool, bias: (Vec, Vec)?, relu: Bool, mask: UnsafePointer<Float>?,
    maskLd: Int
) {
    withUnsafeBytes(of: accs) { raw in
        let v = raw.baseAddress!.assumingMemoryBound(to: Float.self)
        for r in 0..<rows {
            storeFullRow(
                loadVec(v + 2 * r * vecLanes), loadVec(v + (2 * r + 1) * vecLanes), c + r * ldc,
                accumulate: accumulate, bias: bias, relu: relu, mask: mask, maskOffset: r * maskLd)
        }
    }
}

/// One full row of a tile, as `storeVector` computes it: (acc + C when accumulating) + bias, then relu, or
/// zero where the mask row is ≤ 0.
@inline(__always)
func storeFullRow(
    _ lo: Vec, _ hi: Vec, _ c: UnsafeMutablePointer<Float>, accumulate: Bool, bias: (Vec, Vec)?,
    relu: Bool, mask: UnsafePointer<Float>?, maskOffset: Int
) {
    var l = lo
    var h = hi
    if accumulate {
        l += loadVec(c)
        h += loadVec(c + vecLanes)
    }
    if let bias {
        l += bias.0
        h += bias.1
    }
    if relu {
        l = l.replacing(with: 0, where: l .< 0)
        h = h.replacing(with: 0, where: h .< 0)
    }
    if let mask {
        let m = mask + maskOffset
        l = l.replacing(with: 0, where: loadVec(m) .<= 0)
        h = h.replacing(with: 0, where: loadVec(m + vecLanes) .<= 0)
    }
    storeVec(l, c)
    storeVec(h, c + vecLanes)
}

/// Stores one row of a wide tile (two vectors): C = (accumulate ? C : 0) + acc, then the epilogue.
@inline(__always)
func storeRow(
    _ lo: Vec, _ hi: Vec, _ c: UnsafeMutablePointer<Float>, cols: Int,
    row: Int, col: Int, accumulate: Bool, epilogue: GemmEpilogue
) {
    // The common case (a full row, no epilogue: every K block but the last, and the weight gradients) without
    // the general path's dispatch — the same arithmetic: C = acc or C = C + acc.
    if cols == nr, case .none = epilogue {
        let h = c + vecLanes
        if accumulate {
            storeVec(loadVec(c) + lo, c)
            storeVec(loadVec(h) + hi, h)
        } else {
            storeVec(lo, c)
            storeVec(hi, h)
        }
        return
    }
    storeVector(lo, c, lanes: min(cols, vecLanes), row: row, col: col, accumulate: accumulate, epilogue: epilogue)
    if cols > vecLanes {
        storeVector(
            hi, c + vecLanes, lanes: cols - vecLanes, row: row, col: col + vecLanes, accumulate: accumulate,
            epilogue: epilogue)
    }
}

/// The store of `lanes` ≤ vecLanes accumulated values at C[row, col…]: the one place the epilogue arithmetic is
/// written, for full and partial vectors alike (partial lanes are zero-filled), so a value never depends on
/// where a tile edge falls.
@inline(__always)
func storeVector(
    _ acc: Vec, _ c: UnsafeMutablePointer<Float>, lanes: Int, row: Int, col: Int,
    accumulate: Bool, epilogue: GemmEpilogue
) {
    var v = acc
    if accumulate { v += loadLanes(c, lanes) }
    switch epilogue {
    case .none: break
    case .bias(let bias): v += loadLanes(UnsafeMutablePointer(mutating: bias + col), lanes)
    case .biasRelu(let bias):
        v += loadLanes(UnsafeMutablePointer(mutating: bias + col), lanes)
        v = v.replacing(with: 0, where: v .< 0)
    case .reluMask(let mask, let ld):
        v = v.replacing(with: 0, where: loadLanes(UnsafeMutablePointer(mutating: mask + row * ld + col), lanes) .<= 0)
    }
    storeLanes(v, c, lanes)
}

/// Stores `count` values produced lane by lane by `acc`, a vector at a time, through `storeVector`.
@inline(__always)
func storeEpilogueScalar(
    _ c: UnsafeMutablePointer<Float>, count: Int, row: Int, col: Int, accumulate: Bool,
    epilogue: GemmEpilogue, _ acc: (Int) -> Float
) {
    var j = 0
    while j < count {
        let n = min(vecLanes, count - j)
        var v = Vec()
        for l in 0..<n { v[l] = acc(j + l) }
        storeVector(v, c + j, lanes: n, row: row, col: col + j, accumulate: accumulate, epilogue: epilogue)
        j += n
    }
}

/// Columns of C per block of `transposedNarrowGemm`: its Cᵀ block (n ≤ 16 rows) sits after the inner product's
/// packing buffers.
public var transposedBlockColumns: Int { @inline(__always) get { 256 } }

/// n ≤ one vector with op(A)[i, p] = a[p*lda + i] (a narrow layer's weight gradient, Xᵀ·dZ): computed as its
/// transpose, Cᵀ = op(B)ᵀ · op(A)ᵀ, by the wide kernel, whose rows are C's n columns and whose columns are C's m
/// rows — every lane useful, A's rows read whole — then transposed into C a block of 256 rows at a time. The
/// narrow tile, which reads 12 of A's values lda floats apart at each depth, ran (Zen 4, `loom bench kernels`)
/// the book's 512 × 10 weight gradient, 128 deep, at 51 GFLOP/s against 79 this way, a 32-row block 512 deep
/// (the wide model's on 64 workers) at 41 against 90; 171 rows at 48 against 50, 8 rows at 17 against 13.5.
/// Each element is one FMA chain over the wide kernel's K blocks (for k ≤ 512, one chain: the narrow tile's
/// value), whatever block holds it.
func transposedNarrowGemm(
    m: Int, n: Int, k: Int, a: UnsafePointer<Float>, lda: Int,
    b: UnsafePointer<Float>, ldb: Int, transposeB: Bool,
    c: UnsafeMutablePointer<Float>, ldc: Int,
    accumulate: Bool, epilogue: GemmEpilogue, workspace: GemmWorkspace
) {
    let width = transposedBlockColumns
    let inner = requiredCapacity(n: width, k: k)
    workspace.reserve(inner + n * width)
    var i0 = 0
    while i0 < m {
        let rows = min(width, m - i0)
        let ct = workspace.pointer + inner
        // Cᵀ[j, i] = Σ_p op(B)[p, j] · a[p*lda + i0 + i]: op(B)ᵀ is the (transposed) A of the inner product,
        // whose kernel is the wide one for every block (a short last block too: `kernelWidth`).
        gemmCore(
            m: n, n: rows, k: k, a: b, lda: ldb, transposeA: !transposeB, b: a + i0, ldb: lda, transposeB: false,
            c: ct, ldc: rows, accumulate: false, epilogue: .none, update: nil, kernelWidth: width, packedB: nil,
            workspace: workspace)
        if case .none = epilogue, !accumulate {
            // A weight gradient: plain copies (building each row's vector lane by lane cost a third of the
            // product at k = 128).
            for i in 0..<rows {
                let out = c + (i0 + i) * ldc
                for j in 0..<n { out[j] = ct[j * rows + i] }
            }
        } else {
            for i in 0..<rows {
                storeEpilogueScalar(
                    c + (i0 + i) * ldc, count: n, row: i0 + i, col: 0, accumulate: accumulate, epilogue: epilogue
                ) { ct[$0 * rows + i] }
            }
        }
        i0 += rows
    }
}

/// n ≤ one vector, A as it lies (row i at a + i·lda): B is packed once into a k × lanes zero-padded panel (a few
/// KB), A is read in place, and a 12 × 1-vector tile (12 accumulators, 12 FMAs per B load) sweeps the rows.
func narrowGemm(
    m: Int, n: Int, k: Int,
    a: UnsafePointer<Float>, lda: Int,
    b: UnsafePointer<Float>, ldb: Int, transposeB: Bool,
    c: UnsafeMutablePointer<Float>, ldc: Int,
    accumulate: Bool, epilogue: GemmEpilogue, workspace: GemmWorkspace
) {
    let panel = workspace.pointer
    for p in 0..<k {
        let row = panel + p * vecLanes
        if transposeB { for j in 0..<n { row[j] = b[j * ldb + p] } } else { for j in 0..<n { row[j] = b[p * ldb + j] } }
        for j in n..<vecLanes { row[j] = 0 }
    }
    var i0 = 0
    while i0 < m {
        narrowTile(
            k: k, a: a + i0 * lda, aRow: lda, aK: 1, rows: min(mrNarrow, m - i0), b: panel, c: c + i0 * ldc,
            ldc: ldc, cols: n, row: i0, accumulate: accumulate, epilogue: epilogue)
        i0 += mrNarrow
    }
}

@inline(__always)
func narrowTile(
    k: Int, a: UnsafePointer<Float>, aRow: Int, aK: Int, rows: Int, b: UnsafePointer<Float>,
    c: UnsafeMutablePointer<Float>, ldc: Int, cols: Int, row: Int,
    accumulate: Bool, epilogue: GemmEpilogue
) {
    // Twelve row streams; rows past `rows` repeat the last valid one.
    let last = rows - 1
    let a0 = a
    let a1 = a + min(1, last) * aRow
    let a2 = a + min(2, last) * aRow
    let a3 = a + min(3, last) * aRow
    let a4 = a + min(4, last) * aRow
    let a5 = a + min(5, last) * aRow
    let a6 = a + min(6, last) * aRow
    let a7 = a + min(7, last) * aRow
    let a8 = a + min(8, last) * aRow
    let a9 = a + min(9, last) * aRow
    let a10 = a + min(10, last) * aRow
    let a11 = a + min(11, last) * aRow
    var c0 = Vec()
    var c1 = Vec()
    var c2 = Vec()
    var c3 = Vec()
    var c4 = Vec()
    var c5 = Vec()
    var c6 = Vec()
    var c7 = Vec()
    var c8 = Vec()
    var c9 = Vec()
    var c10 = Vec()
    var c11 = Vec()
    var bp = b
    var ap = 0
    for _ in 0..<k {
        let bv = loadVec(bp)
        c0 = c0.addingProduct(Vec(repeating: a0[ap]), bv)
        c1 = c1.addingProduct(Vec(repeating: a1[ap]), bv)
        c2 = c2.addingProduct(Vec(repeating: a2[ap]), bv)
        c3 = c3.addingProduct(Vec(repeating: a3[ap]), bv)
        c4 = c4.addingProduct(Vec(repeating: a4[ap]), bv)
        c5 = c5.addingProduct(Vec(repeating: a5[ap]), bv)
        c6 = c6.addingProduct(Vec(repeating: a6[ap]), bv)
        c7 = c7.addingProduct(Vec(repeating: a7[ap]), bv)
        c8 = c8.addingProduct(Vec(repeating: a8[ap]), bv)
        c9 = c9.addingProduct(Vec(repeating: a9[ap]), bv)
        c10 = c10.addingProduct(Vec(repeating: a10[ap]), bv)
        c11 = c11.addingProduct(Vec(repeating: a11[ap]), bv)
        bp += vecLanes
        ap += aK
    }
    let accs = (c0, c1, c2, c3, c4, c5, c6, c7, c8, c9, c10, c11)
    withUnsafeBytes(of: accs) { raw in
        let v = raw.bindMemory(to: Float.self)
        for r in 0..<rows {
            storeEpilogueScalar(
                c + r * ldc, count: cols, row: row + r, col: 0, accumulate: accumulate,
                epilogue: epilogue
            ) { v[r * vecLanes + $0] }
        }
    }
}

/// Narrow outputs with a long k (the 10-class layer's forward, n = 10, k = 512): C[i, j] is a dot product of A's
/// row i with B's column j, so every lane does useful work instead of 10 of 16. Bᵀ is packed once ([n][k], zero-
/// padded to whole vectors, ~20 KB); a 2-row × 5-column block keeps 10 accumulators, each k chunk loads 2 A
/// vectors and 5 B vectors for 10 FMAs. The partial sums are reduced across lanes at the end — a fixed order
/// for a given (n, k), whatever m is.
func dotGemm(
    m: Int, n: Int, k: Int, a: UnsafePointer<Float>, lda: Int,
    b: UnsafePointer<Float>, ldb: Int, transposeB: Bool,
    c: UnsafeMutablePointer<Float>, ldc: Int,
    accumulate: Bool, epilogue: GemmEpilogue, packed: PackedPanels?, workspace: GemmWorkspace
) {
    let chunks = k / vecLanes
    let kp = dotDepth(k)  // one extra vector holds the k tail, zero-padded
    // B's columns, each zero-padded to kp: packed beforehand (`packOperand`), or here.
    let bt: UnsafeMutablePointer<Float>
    if let packed {
        bt = UnsafeMutablePointer(mutating: packed.base) + packed.firstColumn * kp
    } else {
        bt = workspace.pointer
        for j in 0..<n {
            let row = bt + j * kp
            if transposeB {
                for p in 0..<k { row[p] = b[j * ldb + p] }
            } else {
                for p in 0..<k { row[p] = b[p * ldb + j] }
            }
            for p in k..<kp { row[p] = 0 }
        }
    }
    let tail = k - chunks * vecLanes
    var i0 = 0
    while i0 < m {
        let r1 = min(i0 + 1, m - 1)
        let x0 = a + i0 * lda
        let x1 = a + r1 * lda
        // The k tail of each row, zero-padded into a vector (same lanes, same order, any m).
        var t0 = Vec()
        var t1 = Vec()
        for p in 0..<tail {
            t0[p] = x0[chunks * vecLanes + p]
            t1[p] = x1[chunks * vecLanes + p]
        }
        var j0 = 0
        while j0 < n {
            let lastCol = n - 1
            let w0 = UnsafePointer(bt + j0 * kp)
            let w1 = UnsafePointer(bt + min(j0 + 1, lastCol) * kp)
            let w2 = UnsafePointer(bt + min(j0 + 2, lastCol) * kp)
            let w3 = UnsafePointer(bt + min(j0 + 3, lastCol) * kp)
            let w4 = UnsafePointer(bt + min(j0 + 4, lastCol) * kp)
            var s00 = Vec()
            var s01 = Vec()
            var s02 = Vec()
            var s03 = Vec()
            var s04 = Vec()
            var s10 = Vec()
            var s11 = Vec()
            var s12 = Vec()
            var s13 = Vec()
            var s14 = Vec()
            // Whole vectors along k, then the zero-padded tail as one more (none when k is a multiple).
            @inline(__always) func chunk(_ u0: Vec, _ u1: Vec, _ p: Int) {
                var w = loadVec(w0 + p)
                s00 = s00.addingProduct(u0, w)
                s10 = s10.addingProduct(u1, w)
                w = loadVec(w1 + p)
                s01 = s01.addingProduct(u0, w)
                s11 = s11.addingProduct(u1, w)
                w = loadVec(w2 + p)
                s02 = s02.addingProduct(u0, w)
                s12 = s12.addingProduct(u1, w)
                w = loadVec(w3 + p)
                s03 = s03.addingProduct(u0, w)
                s13 = s13.addingProduct(u1, w)
                w = loadVec(w4 + p)
                s04 = s04.addingProduct(u0, w)
                s14 = s14.addingProduct(u1, w)
            }
            var p = 0
            for _ in 0..<chunks {
                chunk(loadVec(x0 + p), loadVec(x1 + p), p)
                p += vecLanes
            }
            if tail > 0 { chunk(t0, t1, p) }
            let cols = min(5, n - j0)
            let row0 = (s00.sum(), s01.sum(), s02.sum(), s03.sum(), s04.sum())
            let row1 = (s10.sum(), s11.sum(), s12.sum(), s13.sum(), s14.sum())
            withUnsafeBytes(of: row0) { r0 in
                let v = r0.bindMemory(to: Float.self)
                storeEpilogueScalar(
                    c + i0 * ldc + j0, count: cols, row: i0, col: j0, accumulate: accumulate,
                    epilogue: epilogue
                ) { v[$0] }
            }
            if i0 + 1 < m {
                withUnsafeBytes(of: row1) { r1 in
                    let v = r1.bindMemory(to: Float.self)
                    storeEpilogueScalar(
                        c + (i0 + 1) * ldc + j0, count: cols, row: i0 + 1, col: j0,
                        accumulate: accumulate, epilogue: epilogue
                    ) { v[$0] }
                }
            }
            j0 += 5
        }
        i0 += 2
    }
}
