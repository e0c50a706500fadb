// LoomKernels: the kernels the rest of Loom calls, each dispatched at run time to one of two builds of the same
// source — LoomKernelsAVX512 (16-wide vectors, compiled for skylake-avx512) where the CPU has AVX-512, else
// LoomKernelsAVX2 (8-wide, haswell) — so one binary runs on every AVX2 machine at its best width.
// LOOM_KERNELS=avx2 forces the narrower build (tests run the kernel suite both ways). The two builds round the
// same sums in different vector widths, so their results may differ in the last bits; within one build they
// are bitwise reproducible.
import Foundation
@_exported import LoomKernelTypes
import LoomKernelsAVX2
import LoomKernelsAVX512

/// The kernel builds one binary carries.
public enum KernelISA: String, Sendable {
    case avx2 = "AVX2"
    case avx512 = "AVX-512"

    /// The build this process uses: AVX-512 when the CPU has every feature skylake-avx512 compiles for (and
    /// LOOM_KERNELS does not say avx2), else AVX2. Decided once.
    public static let active: KernelISA = {
        let forced = ProcessInfo.processInfo.environment["LOOM_KERNELS"]?.lowercased()
        if forced == "avx2" { return .avx2 }
        return cpuHasAVX512 ? .avx512 : .avx2
    }()

    /// AVX-512 F, BW, CD, DQ and VL, as /proc/cpuinfo lists them (what `-target-cpu skylake-avx512` may emit).
    public static let cpuHasAVX512: Bool = {
        guard let text = try? String(contentsOfFile: "/proc/cpuinfo", encoding: .utf8),
            let flags = text.split(separator: "\n").first(where: { $0.hasPrefix("flags") })
        else { return false }
        let words = Set(flags.split(separator: " ").map(String.init))
        return ["avx512f", "avx512bw", "avx512cd", "avx512dq", "avx512vl"].allSatisfy(words.contains)
    }()

    /// Floats per register vector in this build.
    public var lanes: Int { self == .avx512 ? 16 : 8 }
}

@inline(__always) var wide: Bool { KernelISA.active == .avx512 }

/// Floats per register vector of the active kernels.
public var vecLanes: Int { KernelISA.active.lanes }

/// C[m×n] = op(A) · op(B) (+ C), the epilogue fused into the store (see LoomKernelsAVX2/Gemm.swift).
public func gemm(
    m: Int, n: Int, k: Int,
    a: UnsafePointer<Float>, lda: Int, transposeA: Bool,
    b: UnsafePointer<Float>, ldb: Int, transposeB: Bool,
    c: UnsafeMutablePointer<Float>, ldc: Int,
    accumulate: Bool = false, epilogue: GemmEpilogue = .none, kernelWidth: Int? = nil,
    packedB: PackedPanels? = nil, workspace: GemmWorkspace
) {
    if wide {
        LoomKernelsAVX512.gemm(
            m: m, n: n, k: k, a: a, lda: lda, transposeA: transposeA, b: b, ldb: ldb, transposeB: transposeB, c: c,
            ldc: ldc, accumulate: accumulate, epilogue: epilogue, kernelWidth: kernelWidth, packedB: packedB,
            workspace: workspace)
    } else {
        LoomKernelsAVX2.gemm(
            m: m, n: n, k: k, a: a, lda: lda, transposeA: transposeA, b: b, ldb: ldb, transposeB: transposeB, c: c,
            ldc: ldc, accumulate: accumulate, epilogue: epilogue, kernelWidth: kernelWidth, packedB: packedB,
            workspace: workspace)
    }
}

/// Floats of the panels `packPanels` writes for a row-major k × n B under the active kernels.
public func packedPanelsCount(n: Int, k: Int) -> Int {
    wide ? LoomKernelsAVX512.packedPanelsCount(n: n, k: k) : LoomKernelsAVX2.packedPanelsCount(n: n, k: k)
}

/// The height of the next strip of rows the active micro-kernel computes when `remaining` rows are left (4, 5
/// or 6, and 7 with AVX-512: a strip taller than what is left computes padding rows).
public func gemmStripHeight(_ remaining: Int) -> Int {
    wide ? LoomKernelsAVX512.stripHeight(remaining) : LoomKernelsAVX2.stripHeight(remaining)
}

/// The depth of the K blocks a product k deep is summed in (equal blocks of at most 512; the same under both
/// kernel widths): what of each operand the kernel keeps in cache at a time.
public func gemmKBlockDepth(_ k: Int) -> Int { LoomKernelsAVX2.kBlockSize(k) }

/// Columns of C per block where a product at most one vector wide with a transposed A (a narrow layer's weight
/// gradient) is computed as its transpose by the wide kernel.
public var gemmTransposedBlockColumns: Int { LoomKernelsAVX2.transposedBlockColumns }

/// Floats of op(B) (k × n) packed for a product n wide (`packOperand`); 0 when it reads B in place.
public func packedOperandCount(n: Int, k: Int) -> Int {
    wide ? LoomKernelsAVX512.packedOperandCount(n: n, k: k) : LoomKernelsAVX2.packedOperandCount(n: n, k: k)
}

/// Packs op(B)[depth, columns] into the layout a product n wide and k deep reads through `packedB` (see
/// LoomKernelsAVX2/Gemm.swift); disjoint blocks may be packed by different threads.
public func packOperand(
    k: Int, n: Int, from b: UnsafePointer<Float>, ldb: Int, transposed: Bool, depth: Range<Int>,
    columns: Range<Int>, into dst: UnsafeMutablePointer<Float>
) {
    if wide {
        LoomKernelsAVX512.packOperand(
            k: k, n: n, from: b, ldb: ldb, transposed: transposed, depth: depth, columns: columns, into: dst)
    } else {
        LoomKernelsAVX2.packOperand(
            k: k, n: n, from: b, ldb: ldb, transposed: transposed, depth: depth, columns: columns, into: dst)
    }
}

/// The contiguous ranges of `packOperand`'s layout (B not transposed, n wide, k deep) that hold B's rows
/// `depth` (see LoomKernelsAVX2/Gemm.swift).
public func packedRowRanges(k: Int, n: Int, depth: Range<Int>) -> [Range<Int>] {
    wide
        ? LoomKernelsAVX512.packedRowRanges(k: k, n: n, depth: depth)
        : LoomKernelsAVX2.packedRowRanges(k: k, n: n, depth: depth)
}

/// B's rows `depth` (not transposed, row stride `ldb`) read back from `packOperand`'s layout.
public func unpackOperand(
    k: Int, n: Int, from packed: UnsafePointer<Float>, depth: Range<Int>, into b: UnsafeMutablePointer<Float>,
    ldb: Int
) {
    if wide {
        LoomKernelsAVX512.unpackOperand(k: k, n: n, from: packed, depth: depth, into: b, ldb: ldb)
    } else {
        LoomKernelsAVX2.unpackOperand(k: k, n: n, from: packed, depth: depth, into: b, ldb: ldb)
    }
}

/// Packs rows `rows` of a row-major k × n B into the panels `gemm` and `gemmUpdate` read through `packedB`
/// (see LoomKernelsAVX2/Gemm.swift); disjoint row ranges may be packed by different threads.
public func packPanels(
    rows: Range<Int>, k: Int, n: Int, from b: UnsafePointer<Float>, ldb: Int, into dst: UnsafeMutablePointer<Float>
) {
    if wide {
        LoomKernelsAVX512.packPanels(rows: rows, k: k, n: n, from: b, ldb: ldb, into: dst)
    } else {
        LoomKernelsAVX2.packPanels(rows: rows, k: k, n: n, from: b, ldb: ldb, into: dst)
    }
}

/// Whether `gemmUpdate` serves a product of this shape.
public func gemmUpdateSupports(n: Int, k: Int) -> Bool {
    wide ? LoomKernelsAVX512.gemmUpdateSupports(n: n, k: k) : LoomKernelsAVX2.gemmUpdateSupports(n: n, k: k)
}

/// The gradient op(A)·op(B) consumed by the optimizer `update` as it is computed, never stored.
public func gemmUpdate(
    m: Int, n: Int, k: Int,
    a: UnsafePointer<Float>, lda: Int, transposeA: Bool,
    b: UnsafePointer<Float>, ldb: Int, transposeB: Bool,
    update: UpdateRule, packedB: PackedPanels? = nil, workspace: GemmWorkspace
) {
    if wide {
        LoomKernelsAVX512.gemmUpdate(
            m: m, n: n, k: k, a: a, lda: lda, transposeA: transposeA, b: b, ldb: ldb, transposeB: transposeB,
            update: update, packedB: packedB, workspace: workspace)
    } else {
        LoomKernelsAVX2.gemmUpdate(
            m: m, n: n, k: k, a: a, lda: lda, transposeA: transposeA, b: b, ldb: ldb, transposeB: transposeB,
            update: update, packedB: packedB, workspace: workspace)
    }
}

/// Applies `rule` to parameters `range`.
public func applyUpdate(_ rule: UpdateRule, _ range: Range<Int>) {
    if wide { LoomKernelsAVX512.applyUpdate(rule, range) } else { LoomKernelsAVX2.applyUpdate(rule, range) }
}

/// y = f(y) in place for `rows` rows.
public func applyActivation(
    _ kind: ActivationKind, rows: Int, cols: Int, _ y: UnsafeMutablePointer<Float>, ld: Int
) {
    if wide {
        LoomKernelsAVX512.applyActivation(kind, rows: rows, cols: cols, y, ld: ld)
    } else {
        LoomKernelsAVX2.applyActivation(kind, rows: rows, cols: cols, y, ld: ld)
    }
}

/// dy ⊙= f'(y), the derivative written in terms of the output.
public func multiplyActivationDerivative(
    _ kind: ActivationKind, rows: Int, cols: Int, y: UnsafePointer<Float>, ldy: Int,
    dy: UnsafeMutablePointer<Float>, ld: Int
) {
    if wide {
        LoomKernelsAVX512.multiplyActivationDerivative(kind, rows: rows, cols: cols, y: y, ldy: ldy, dy: dy, ld: ld)
    } else {
        LoomKernelsAVX2.multiplyActivationDerivative(kind, rows: rows, cols: cols, y: y, ldy: ldy, dy: dy, ld: ld)
    }
}

/// Row-wise softmax in place.
public func softmaxRows(rows: Int, cols: Int, _ y: UnsafeMutablePointer<Float>, ld: Int) {
    if wide {
        LoomKernelsAVX512.softmaxRows(rows: rows, cols: cols, y, ld: ld)
    } else {
        LoomKernelsAVX2.softmaxRows(rows: rows, cols: cols, y, ld: ld)
    }
}

/// Fused softmax + cross-entropy (+ gradient), one pass per row.
public func softmaxCrossEntropyRows(
    rows: Int, cols: Int, _ z: UnsafePointer<Float>, ld: Int,
    out: UnsafeMutablePointer<Float>, ldOut: Int,
    labels: UnsafePointer<Int32>, scale: Float, gradient: Bool,
    loss: UnsafeMutablePointer<Float>, correct: UnsafeMutablePointer<Float>
) {
    if wide {
        LoomKernelsAVX512.softmaxCrossEntropyRows(
            rows: rows, cols: cols, z, ld: ld, out: out, ldOut: ldOut, labels: labels, scale: scale,
            gradient: gradient, loss: loss, correct: correct)
    } else {
        LoomKernelsAVX2.softmaxCrossEntropyRows(
            rows: rows, cols: cols, z, ld: ld, out: out, ldOut: ldOut, labels: labels, scale: scale,
            gradient: gradient, loss: loss, correct: correct)
    }
}

/// out[j] (+)= Σ_i x[i, j] for columns j in `columns`, rows in increasing order.
public func columnSums(
    rows: Int, columns: Range<Int>, _ x: UnsafePointer<Float>, ld: Int,
    into out: UnsafeMutablePointer<Float>, accumulate: Bool
) {
    if wide {
        LoomKernelsAVX512.columnSums(rows: rows, columns: columns, x, ld: ld, into: out, accumulate: accumulate)
    } else {
        LoomKernelsAVX2.columnSums(rows: rows, columns: columns, x, ld: ld, into: out, accumulate: accumulate)
    }
}

/// (Σ|v|, Σv²) over a block: v = x, or x with the penalty gradient of weights `penaltyOf` (see the kernels).
public func absAndSquareSums(
    _ x: UnsafePointer<Float>, count: Int, penaltyOf w: UnsafePointer<Float>? = nil, l1: Float = 0, l2: Float = 0
) -> (abs: Double, squares: Double) {
    wide
        ? LoomKernelsAVX512.absAndSquareSums(x, count: count, penaltyOf: w, l1: l1, l2: l2)
        : LoomKernelsAVX2.absAndSquareSums(x, count: count, penaltyOf: w, l1: l1, l2: l2)
}

/// y += bias for each row.
public func addBias(rows: Int, cols: Int, _ y: UnsafeMutablePointer<Float>, ld: Int, bias: UnsafePointer<Float>) {
    if wide {
        LoomKernelsAVX512.addBias(rows: rows, cols: cols, y, ld: ld, bias: bias)
    } else {
        LoomKernelsAVX2.addBias(rows: rows, cols: cols, y, ld: ld, bias: bias)
    }
}

/// The core's fp32 FMA peak with the active build's vectors, measured on the calling thread.
public func measureFMAPeak(iterations: Int = 2_000_000, repeats: Int = 5, clock: () -> Double) -> Double {
    wide
        ? LoomKernelsAVX512.measureFMAPeak(iterations: iterations, repeats: repeats, clock: clock)
        : LoomKernelsAVX2.measureFMAPeak(iterations: iterations, repeats: repeats, clock: clock)
}

/// e^x for each value, with the active build's vector exp.
public func expValues(_ x: [Float]) -> [Float] {
    wide ? LoomKernelsAVX512.expValues(x) : LoomKernelsAVX2.expValues(x)
}
