import Foundation
import LoomKernelTypes

#if arch(x86_64)
    import _Builtin_intrinsics.intel
#endif

// Row-wise and element-wise kernels of a dense network, over row blocks of row-major matrices.
// Each works on `rows × cols` values with row stride `ld`, vectorized with `Vec` along the row; tails go
// through the same vector arithmetic on a zero-padded copy, so a value never depends on where a row block
// begins or ends.

/// e^x for each lane: Cody–Waite range reduction x = n·ln2 + r, a degree-6 polynomial for e^r, then 2^n by
/// exponent arithmetic (Cephes' expf; ≤ 2 ulp over the float range, 0 below −87.3, +inf above 88.7).
@inline(__always)
public func vexp(_ x: Vec) -> Vec {
    let xc = x.clamped(lowerBound: Vec(repeating: -87.33654), upperBound: Vec(repeating: 88.72283))
    let n = (xc * 1.442695040888963).rounded(.toNearestOrEven)
    var r = xc.addingProduct(n, Vec(repeating: -0.693359375))  // r = x − n·ln2, ln2 split in two parts
    r = r.addingProduct(n, Vec(repeating: 2.12194440e-4))
    var p = Vec(repeating: 1.9875691500e-4)
    p = p * r + 1.3981999507e-3
    p = p * r + 8.3334519073e-3
    p = p * r + 4.1665795894e-2
    p = p * r + 1.6666665459e-1
    p = p * r + 5.0000001201e-1
    let r2 = r * r
    let er = p * r2 + r + 1
    // 2^n as two normal powers of two, 2^(n/2)·2^(n − n/2): n ranges over [−126, 128], past what one float's
    // exponent field holds at either end.
    var s1 = Vec()
    var s2 = Vec()
    for i in 0..<Vec.scalarCount {
        let k = Int32(n[i])
        let h = k / 2
        s1[i] = Float(bitPattern: UInt32(h + 127) << 23)
        s2[i] = Float(bitPattern: UInt32(k - h + 127) << 23)
    }
    var y = er * s1 * s2
    y = y.replacing(with: 0, where: x .< -87.33654)
    y = y.replacing(with: .infinity, where: x .> 88.72283)
    return y
}

/// √x for each lane, correctly rounded (vsqrtps). Swift's `squareRoot()` on SIMD types calls libm's sqrtf
/// once per lane on Linux (measured: 6× slower RMSprop update), so on x86 we use the instruction directly.
@inline(__always)
public func vsqrt(_ x: Vec) -> Vec {
    #if arch(x86_64) && LOOM_AVX512
        return _mm512_sqrt_ps(x)  // __m512 is SIMD16<Float> in Swift
    #elseif arch(x86_64)
        return _mm256_sqrt_ps(x)  // __m256 is SIMD8<Float> in Swift
    #else
        var r = x
        for i in 0..<Vec.scalarCount { r[i] = x[i].squareRoot() }
        return r
    #endif
}

/// Loads `count` ≤ lanes floats into a vector, zero-filling the rest.
@inline(__always) func loadPartial(_ p: UnsafePointer<Float>, _ count: Int) -> Vec {
    var v = Vec()
    for i in 0..<count { v[i] = p[i] }
    return v
}
/// Stores the first `count` lanes.
@inline(__always) func storePartial(_ v: Vec, _ p: UnsafeMutablePointer<Float>, _ count: Int) {
    for i in 0..<count { p[i] = v[i] }
}

/// Applies `body` to every vector of a row-block, in place: x = body(x, aux) where aux is the matching vector
/// of a second matrix (or of x when `aux` is nil).
@inline(__always)
func mapRows(
    rows: Int, cols: Int, _ x: UnsafeMutablePointer<Float>, ld: Int,
    aux: UnsafePointer<Float>? = nil, auxLd: Int = 0, _ body: (Vec, Vec) -> Vec
) {
    let full = cols / vecLanes * vecLanes
    for i in 0..<rows {
        let row = x + i * ld
        let other = aux.map { $0 + i * auxLd } ?? UnsafePointer(row)
        var j = 0
        while j < full {
            storeVec(body(loadVec(row + j), loadVec(other + j)), row + j)
            j += vecLanes
        }
        if full < cols {
            let t = cols - full
            storePartial(body(loadPartial(row + full, t), loadPartial(other + full, t)), row + full, t)
        }
    }
}

// The element-wise nonlinearities of a dense layer. Each derivative is written in terms of the *output*
// y = f(z), so a layer keeps only its output for the backward pass.

/// y = f(y) in place for `rows` rows (softmax is row-wise: y_j = e^{z_j − max z} / Σ_k e^{z_k − max z}).
public func applyActivation(
    _ kind: ActivationKind, rows: Int, cols: Int,
    _ y: UnsafeMutablePointer<Float>, ld: Int
) {
    switch kind {
    case .linear: return
    case .relu: mapRows(rows: rows, cols: cols, y, ld: ld) { v, _ in v.replacing(with: 0, where: v .< 0) }
    case .sigmoid:  // σ(z) = 1 / (1 + e^{−z})
        mapRows(rows: rows, cols: cols, y, ld: ld) { v, _ in 1 / (1 + vexp(-v)) }
    case .tanh:  // tanh(z) = 1 − 2 / (e^{2z} + 1)
        mapRows(rows: rows, cols: cols, y, ld: ld) { v, _ in 1 - 2 / (vexp(v + v) + 1) }
    case .softmax: softmaxRows(rows: rows, cols: cols, y, ld: ld)
    }
}

/// dy = dy ⊙ f'(z), given y = f(z), in place (softmax: dz = y ⊙ (dy − Σ_j dy_j·y_j), its Jacobian-vector
/// product).
public func multiplyActivationDerivative(
    _ kind: ActivationKind, rows: Int, cols: Int,
    y: UnsafePointer<Float>, ldy: Int,
    dy: UnsafeMutablePointer<Float>, ld: Int
) {
    switch kind {
    case .linear: return
    case .relu:  // relu'(z) = 1 where y > 0
        mapRows(rows: rows, cols: cols, dy, ld: ld, aux: y, auxLd: ldy) { g, o in g.replacing(with: 0, where: o .<= 0) }
    case .sigmoid:  // σ' = y(1 − y)
        mapRows(rows: rows, cols: cols, dy, ld: ld, aux: y, auxLd: ldy) { g, o in g * (o * (1 - o)) }
    case .tanh:  // tanh' = 1 − y²
        mapRows(rows: rows, cols: cols, dy, ld: ld, aux: y, auxLd: ldy) { g, o in g * (1 - o * o) }
    case .softmax:
        for i in 0..<rows {
            let yr = y + i * ldy
            let gr = dy + i * ld
            var dot: Float = 0
            for j in 0..<cols { dot += yr[j] * gr[j] }
            for j in 0..<cols { gr[j] = yr[j] * (gr[j] - dot) }
        }
    }
}

/// Row-wise softmax in place, stable: subtract the row max before exponentiating.
public func softmaxRows(rows: Int, cols: Int, _ y: UnsafeMutablePointer<Float>, ld: Int) {
    for i in 0..<rows {
        let row = y + i * ld
        var m = -Float.infinity
        for j in 0..<cols { m = max(m, row[j]) }
        var sum: Float = 0
        mapRows(rows: 1, cols: cols, row, ld: ld) { v, _ in vexp(v - m) }
        for j in 0..<cols { sum += row[j] }
        let inv = 1 / sum
        mapRows(rows: 1, cols: cols, row, ld: ld) { v, _ in v * inv }
    }
}

/// Fused softmax + cross-entropy + gradient, one pass per row, from logits z into `out` (which may be z):
///   loss_i = log Σ_j e^{z_ij} − z_i,label   (log-sum-exp with the max subtracted: never overflows)
///   dz_ij  = (softmax(z_i)_j − [j = label]) · scale      (scale = 1 / batch size: the batch mean's gradient)
/// Writes each row's loss and 1/0 for a correct argmax prediction. With `gradient` false z is replaced by the
/// probabilities instead (evaluation).
public func softmaxCrossEntropyRows(
    rows: Int, cols: Int, _ z: UnsafePointer<Float>, ld: Int,
    out: UnsafeMutablePointer<Float>, ldOut: Int,
    labels: UnsafePointer<Int32>, scale: Float, gradient: Bool,
    loss: UnsafeMutablePointer<Float>, correct: UnsafeMutablePointer<Float>
) {
    for i in 0..<rows {
        let logits = z + i * ld
        let row = out + i * ldOut
        let label = Int(labels[i])
        assert(label >= 0 && label < cols, "label \(label) indexes past a row of \(cols) outputs")
        var m = -Float.infinity
        var best = 0
        for j in 0..<cols where logits[j] > m {
            m = logits[j]
            best = j
        }
        let zLabel = logits[label]
        if row != UnsafeMutablePointer(mutating: logits) { row.update(from: logits, count: cols) }
        mapRows(rows: 1, cols: cols, row, ld: ldOut) { v, _ in vexp(v - m) }
        var sum: Float = 0
        for j in 0..<cols { sum += row[j] }
        loss[i] = Foundation.log(sum) + m - zLabel
        correct[i] = best == label ? 1 : 0
        let inv = 1 / sum
        if gradient {
            let s = scale
            mapRows(rows: 1, cols: cols, row, ld: ldOut) { v, _ in v * (inv * s) }
            row[label] -= s
        } else {
            mapRows(rows: 1, cols: cols, row, ld: ldOut) { v, _ in v * inv }
        }
    }
}

/// out[j] (+)= Σ_i x[i, j] for columns j in `columns`, summing rows in increasing order (the bias gradient).
public func columnSums(
    rows: Int, columns: Range<Int>, _ x: UnsafePointer<Float>, ld: Int,
    into out: UnsafeMutablePointer<Float>, accumulate: Bool
) {
    var j = columns.lowerBound
    while j < columns.upperBound {
        let w = min(vecLanes, columns.upperBound - j)
        var acc = accumulate ? loadPartial(out + j, w) : Vec()
        for i in 0..<rows { acc += w == vecLanes ? loadVec(x + i * ld + j) : loadPartial(x + i * ld + j, w) }
        storePartial(acc, out + j, w)
        j += w
    }
}

/// g + l1·sign(w) + 2·l2·w: a gradient with the regularizers' penalty l1·Σ|w| + l2·Σw² added (sign(0) = 0).
@inline(__always)
func penalized(_ g: Vec, _ w: Vec, l1: Float, l2: Float) -> Vec {
    let zero = Vec(repeating: 0)
    let sign = zero.replacing(with: 1, where: w .> zero).replacing(with: -1, where: w .< zero)
    return g + w * (2 * l2) + sign * l1
}

/// (Σ|v|, Σv²) over `count` values v = x[i], or v = penalized(x[i], w[i]) when `penaltyOf` gives w: the
/// penalty of a block of weights, or the squared norm of a block of gradients with their penalty. One vector
/// accumulator in a fixed order, so a block's sums never depend on who computes them.
public func absAndSquareSums(
    _ x: UnsafePointer<Float>, count: Int, penaltyOf w: UnsafePointer<Float>?, l1: Float, l2: Float
) -> (abs: Double, squares: Double) {
    var absAcc = Vec()
    var sqAcc = Vec()
    var i = 0
    while i < count {
        let n = min(vecLanes, count - i)
        var v = n == vecLanes ? loadVec(x + i) : loadPartial(x + i, n)
        if let w { v = penalized(v, n == vecLanes ? loadVec(w + i) : loadPartial(w + i, n), l1: l1, l2: l2) }
        absAcc += v.replacing(with: -v, where: v .< Vec(repeating: 0))
        sqAcc = sqAcc.addingProduct(v, v)
        i += n
    }
    var a = 0.0
    var q = 0.0
    for l in 0..<vecLanes {
        a += Double(absAcc[l])
        q += Double(sqAcc[l])
    }
    return (a, q)
}

/// y[i, j] += bias[j] for a row block.
public func addBias(rows: Int, cols: Int, _ y: UnsafeMutablePointer<Float>, ld: Int, bias: UnsafePointer<Float>) {
    for i in 0..<rows {
        mapRows(rows: 1, cols: cols, y + i * ld, ld: ld, aux: bias, auxLd: 0) { v, b in v + b }
    }
}

/// e^x for each value, through `vexp` (for tests and callers outside the kernels: `Vec` is this build's own).
public func expValues(_ x: [Float]) -> [Float] {
    var out = [Float](repeating: 0, count: x.count)
    var i = 0
    while i < x.count {
        let n = min(vecLanes, x.count - i)
        var v = Vec()
        for l in 0..<n { v[l] = x[i + l] }
        let e = vexp(v)
        for l in 0..<n { out[i + l] = e[l] }
        i += n
    }
    return out
}
