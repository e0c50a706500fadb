// The tensor operations, each with its backward pass beside it (the math in a one-line comment):
//   x.matmul(w)     z = x·w                      dx += dz·wᵀ,  dw += xᵀ·dz           (the GEMM kernels)
//   a + b, a - b    z = a ± b (broadcast)        da += Σ dz,   db ±= Σ dz           (summed over broadcast axes)
//   a * b           z = a ⊙ b (broadcast)        da += Σ dz ⊙ b,  db += Σ dz ⊙ a
//   x * c           z = c·x                      dx += c·dz
//   relu, sigmoid,  y = f(x)                     dx += dy ⊙ f'(x), written with y: [y > 0], y(1 − y), 1 − y²
//   tanh, exp       y = eˣ                       dx += dy ⊙ y
//   log             y = ln x                     dx += dy / x
//   softmax         y = eˣ / Σ eˣ (last axis)    dx += y ⊙ (dy − Σ dy ⊙ y)
//   sum, mean       y = Σ x (one axis, or all)   dx += dy (broadcast back; mean: / n)
//   reshape         the same values, new shape   dx += dy
//   pick(labels)    y_i = x[i, label_i]          dx[i, label_i] += dy_i
//   clip(lo, hi)    y = min(max(x, lo), hi)      dx += dy where lo < x < hi
// Shapes are checked before anything is computed; a mismatch is a thrown TapeError naming both shapes.
import Foundation
import LoomKernels

/// What a node computed (its inputs are the node's `a` and `b`).
enum Op {
    case constant
    case matmul
    case add, subtract, multiply
    case scale(Float)
    case relu, sigmoid, tanh, exp, log, softmax
    case sum(axis: Int)
    case mean(axis: Int)  // axis -1: every value
    case reshape
    case pick
    case clip(Float, Float)
}

extension Tensor {
    /// The matrix product: (m × k) · (k × n) → m × n.
    public func matmul(_ other: Tensor) throws(TapeError) -> Tensor {
        try GradientTape.recording().matmul(self, other)
    }
    /// a + b, broadcasting as NumPy does.
    public static func + (a: Tensor, b: Tensor) throws(TapeError) -> Tensor {
        try GradientTape.recording().binary(.add, a, b)
    }
    /// a − b, broadcasting as NumPy does.
    public static func - (a: Tensor, b: Tensor) throws(TapeError) -> Tensor {
        try GradientTape.recording().binary(.subtract, a, b)
    }
    /// a ⊙ b (elementwise), broadcasting as NumPy does.
    public static func * (a: Tensor, b: Tensor) throws(TapeError) -> Tensor {
        try GradientTape.recording().binary(.multiply, a, b)
    }
    /// a · c for a number c.
    public static func * (a: Tensor, c: Float) throws(TapeError) -> Tensor {
        try GradientTape.recording().unary(.scale(c), a)
    }
    /// c · a for a number c.
    public static func * (c: Float, a: Tensor) throws(TapeError) -> Tensor { try a * c }
    /// a / c for a number c.
    public static func / (a: Tensor, c: Float) throws(TapeError) -> Tensor { try a * (1 / c) }
    /// −a.
    public static prefix func - (a: Tensor) throws(TapeError) -> Tensor { try a * -1 }

    /// max(x, 0), elementwise.
    public func relu() throws(TapeError) -> Tensor { try GradientTape.recording().unary(.relu, self) }
    /// 1 / (1 + e^−x), elementwise.
    public func sigmoid() throws(TapeError) -> Tensor { try GradientTape.recording().unary(.sigmoid, self) }
    /// tanh x, elementwise.
    public func tanh() throws(TapeError) -> Tensor { try GradientTape.recording().unary(.tanh, self) }
    /// eˣ, elementwise.
    public func exp() throws(TapeError) -> Tensor { try GradientTape.recording().unary(.exp, self) }
    /// ln x, elementwise.
    public func log() throws(TapeError) -> Tensor { try GradientTape.recording().unary(.log, self) }
    /// Softmax over the last axis.
    public func softmax() throws(TapeError) -> Tensor { try GradientTape.recording().unary(.softmax, self) }
    /// Values limited to [lo, hi] (Keras clips probabilities to [1e-7, 1 − 1e-7] before a log).
    public func clip(_ lo: Float, _ hi: Float) throws(TapeError) -> Tensor {
        try GradientTape.recording().unary(.clip(lo, hi), self)
    }

    /// The sum over `axis` (that axis removed), or over every value (a scalar).
    public func sum(axis: Int? = nil) throws(TapeError) -> Tensor {
        try GradientTape.recording().reduce(self, axis: axis, mean: false)
    }
    /// The mean over `axis` (that axis removed), or over every value (a scalar).
    public func mean(axis: Int? = nil) throws(TapeError) -> Tensor {
        try GradientTape.recording().reduce(self, axis: axis, mean: true)
    }
    /// The same values with another shape of the same count.
    public func reshaped(_ shape: Shape) throws(TapeError) -> Tensor {
        try GradientTape.recording().reshape(self, shape)
    }
    /// Row i's value at column labels[i], for a matrix of one row per label (the target class's probability).
    public func pick(_ labels: UnsafeBufferPointer<Int32>) throws(TapeError) -> Tensor {
        try GradientTape.recording().pick(self, labels)
    }
}

/// Keras' sparse categorical cross-entropy from probabilities: mean over rows of −log p[label], p clipped to
/// [1e-7, 1 − 1e-7] as Keras does; written with tape operations, so its gradient comes from the tape.
public func sparseCategoricalCrossentropy(probabilities p: Tensor, labels: UnsafeBufferPointer<Int32>)
    throws(TapeError) -> Tensor
{
    try -(p.pick(labels).clip(1e-7, 1 - 1e-7).log().mean())
}

extension GradientTape {
    // MARK: Forward

    func matmul(_ x: Tensor, _ w: Tensor) throws(TapeError) -> Tensor {
        try check(x)
        try check(w)
        guard x.shape.rank == 2, w.shape.rank == 2, x.shape[1] == w.shape[0] else {
            throw .shapes("matmul needs (m, k) · (k, n), got \(x.shape) · \(w.shape)")
        }
        let (m, k, n) = (x.shape[0], x.shape[1], w.shape[1])
        let out = values.take(m * n)
        gemm(
            m: m, n: n, k: k, a: x.data, lda: k, transposeA: false, b: w.data, ldb: n, transposeB: false, c: out,
            ldc: n, workspace: workspace)
        return node(.matmul, [m, n], out, x, w)
    }

    func binary(_ op: Op, _ a: Tensor, _ b: Tensor) throws(TapeError) -> Tensor {
        try check(a)
        try check(b)
        guard let shape = broadcastShape(a.shape, b.shape) else {
            throw .shapes("shapes \(a.shape) and \(b.shape) do not broadcast (each axis must match or be 1)")
        }
        let out = values.take(shape.count)
        let n = shape.count
        switch op {
        case .add where a.shape == b.shape: for i in 0..<n { out[i] = a.data[i] + b.data[i] }
        case .subtract where a.shape == b.shape: for i in 0..<n { out[i] = a.data[i] - b.data[i] }
        case .multiply where a.shape == b.shape: for i in 0..<n { out[i] = a.data[i] * b.data[i] }
        case .add where a.shape == shape && b.shape.rank == 1 && a.shape.rank == 2:  // a bias row
            out.update(from: a.data, count: n)
            addBias(rows: shape[0], cols: shape[1], out, ld: shape[1], bias: b.data)
        default:
            broadcastLoop(shape, a.shape, b.shape) { o, i, j in
                switch op {
                case .add: out[o] = a.data[i] + b.data[j]
                case .subtract: out[o] = a.data[i] - b.data[j]
                default: out[o] = a.data[i] * b.data[j]
                }
            }
        }
        return node(op, shape, out, a, b)
    }

    func unary(_ op: Op, _ x: Tensor) throws(TapeError) -> Tensor {
        try check(x)
        let n = x.shape.count
        let out = values.take(n)
        switch op {
        case .scale(let c): for i in 0..<n { out[i] = c * x.data[i] }
        case .relu, .sigmoid, .tanh:
            out.update(from: x.data, count: n)
            let kind: ActivationKind =
                if case .relu = op { .relu } else if case .sigmoid = op { .sigmoid } else { .tanh }
            applyActivation(kind, rows: 1, cols: n, out, ld: n)
        case .exp: for i in 0..<n { out[i] = Foundation.exp(x.data[i]) }
        case .log: for i in 0..<n { out[i] = Foundation.log(x.data[i]) }
        case .clip(let lo, let hi): for i in 0..<n { out[i] = min(max(x.data[i], lo), hi) }
        case .softmax:
            guard x.shape.rank >= 1, x.shape[x.shape.rank - 1] > 0 else {
                throw .shapes("softmax needs a last axis with values, got \(x.shape)")
            }
            let cols = x.shape[x.shape.rank - 1]
            out.update(from: x.data, count: n)
            softmaxRows(rows: n / cols, cols: cols, out, ld: cols)
        default: preconditionFailure("not a unary operation")
        }
        return node(op, x.shape, out, x, nil)
    }

    func reduce(_ x: Tensor, axis: Int?, mean: Bool) throws(TapeError) -> Tensor {
        try check(x)
        if let axis, !(0..<x.shape.rank).contains(axis) {
            throw .argument("axis \(axis) is outside the \(x.shape.rank) axes of a tensor of shape \(x.shape)")
        }
        let shape = axis.map { a in Shape(x.shape.dims.enumerated().filter { $0.offset != a }.map(\.element)) } ?? []
        let out = values.take(shape.count)
        let (outer, length, inner) = split(x.shape, axis)
        let scale: Float = mean ? 1 / Float(max(1, length)) : 1
        for o in 0..<outer {
            for i in 0..<inner {
                var total: Float = 0
                for l in 0..<length { total += x.data[(o * length + l) * inner + i] }
                out[o * inner + i] = total * scale
            }
        }
        return node(mean ? .mean(axis: axis ?? -1) : .sum(axis: axis ?? -1), shape, out, x, nil)
    }

    func reshape(_ x: Tensor, _ shape: Shape) throws(TapeError) -> Tensor {
        try check(x)
        if let refusal = shape.refusal { throw .shapes(refusal) }
        guard shape.count == x.shape.count else {
            throw .shapes("cannot reshape \(x.shape) (\(x.shape.count) values) to \(shape) (\(shape.count))")
        }
        return node(.reshape, shape, x.data, x, nil)
    }

    func pick(_ x: Tensor, _ labels: UnsafeBufferPointer<Int32>) throws(TapeError) -> Tensor {
        try check(x)
        guard x.shape.rank == 2, x.shape[0] == labels.count else {
            throw .shapes("pick needs a matrix of one row per label, got \(x.shape) for \(labels.count) labels")
        }
        let cols = x.shape[1]
        if let bad = labels.firstIndex(where: { $0 < 0 || Int($0) >= cols }) {
            throw .argument("label \(labels[bad]) (row \(bad)) is outside the \(cols) columns")
        }
        // The labels are kept (as floats, exact below 2²⁴) after the output, for the backward pass.
        let out = values.take(2 * labels.count)
        for (i, label) in labels.enumerated() {
            out[i] = x.data[i * cols + Int(label)]
            out[labels.count + i] = Float(label)
        }
        return node(.pick, [labels.count], out, x, nil)
    }

    /// Appends the node of an operation on `a` (and `b`): it needs a gradient if an input does.
    func node(_ op: Op, _ shape: Shape, _ out: UnsafeMutablePointer<Float>, _ a: Tensor, _ b: Tensor?) -> Tensor {
        var n = Node(op: op, shape: shape, data: out, a: a.node, b: b?.node ?? -1)
        n.needsGradient = nodes[Int(a.node)].needsGradient || (b.map { nodes[Int($0.node)].needsGradient } ?? false)
        return append(n)
    }

    // MARK: Backward

    /// Adds node i's gradient into its inputs' gradients.
    func backward(node i: Int) {
        let node = nodes[i]
        guard let dy = node.gradient, node.a >= 0 else { return }
        let a = Int(node.a)
        let x = nodes[a].data
        let n = node.shape.count
        /// The input's gradient buffer, or nil when no gradient flows into it.
        func into(_ k: Int) -> UnsafeMutablePointer<Float>? { nodes[k].needsGradient ? gradientBuffer(k) : nil }
        switch node.op {
        case .constant: break
        case .matmul:  // dx += dz·wᵀ, dw += xᵀ·dz
            let b = Int(node.b)
            let (m, k, cols) = (nodes[a].shape[0], nodes[a].shape[1], node.shape[1])
            if let dx = into(a) {
                gemm(
                    m: m, n: k, k: cols, a: dy, lda: cols, transposeA: false, b: nodes[b].data, ldb: cols,
                    transposeB: true, c: dx, ldc: k, accumulate: true, workspace: workspace)
            }
            if let dw = into(b) {
                gemm(
                    m: k, n: cols, k: m, a: x, lda: k, transposeA: true, b: dy, ldb: cols, transposeB: false, c: dw,
                    ldc: cols, accumulate: true, workspace: workspace)
            }
        case .add, .subtract, .multiply:  // da += Σ dz (⊙ b), db += ±Σ dz (⊙ a), summed over broadcast axes
            binaryBackward(node, dy)
        case .scale(let c): if let dx = into(a) { for j in 0..<n { dx[j] += c * dy[j] } }
        case .relu: if let dx = into(a) { for j in 0..<n where node.data[j] > 0 { dx[j] += dy[j] } }
        case .sigmoid:
            if let dx = into(a) { for j in 0..<n { dx[j] += dy[j] * node.data[j] * (1 - node.data[j]) } }
        case .tanh: if let dx = into(a) { for j in 0..<n { dx[j] += dy[j] * (1 - node.data[j] * node.data[j]) } }
        case .exp: if let dx = into(a) { for j in 0..<n { dx[j] += dy[j] * node.data[j] } }
        case .log: if let dx = into(a) { for j in 0..<n { dx[j] += dy[j] / x[j] } }
        case .clip(let lo, let hi):
            if let dx = into(a) { for j in 0..<n where x[j] > lo && x[j] < hi { dx[j] += dy[j] } }
        case .softmax:  // dx += y ⊙ (dy − Σ dy ⊙ y), per row
            guard let dx = into(a) else { return }
            let cols = node.shape[node.shape.rank - 1]
            for r in 0..<n / cols {
                let (y, g, d) = (node.data + r * cols, dy + r * cols, dx + r * cols)
                var dot: Float = 0
                for j in 0..<cols { dot += g[j] * y[j] }
                for j in 0..<cols { d[j] += y[j] * (g[j] - dot) }
            }
        case .sum(let axis), .mean(let axis):  // dx += dy broadcast back (÷ n for the mean)
            guard let dx = into(a) else { return }
            let (outer, length, inner) = split(nodes[a].shape, axis < 0 ? nil : axis)
            let scale: Float = if case .mean = node.op { 1 / Float(max(1, length)) } else { 1 }
            for o in 0..<outer {
                for l in 0..<length {
                    for j in 0..<inner { dx[(o * length + l) * inner + j] += dy[o * inner + j] * scale }
                }
            }
        case .reshape: if let dx = into(a) { for j in 0..<n { dx[j] += dy[j] } }
        case .pick:  // dx[i, label_i] += dy_i
            guard let dx = into(a) else { return }
            let cols = nodes[a].shape[1]
            for r in 0..<n { dx[r * cols + Int(node.data[n + r])] += dy[r] }
        }
    }

    func binaryBackward(_ node: Node, _ dz: UnsafeMutablePointer<Float>) {
        let (a, b) = (Int(node.a), Int(node.b))
        let (av, bv) = (nodes[a].data, nodes[b].data)
        let da = nodes[a].needsGradient ? gradientBuffer(a) : nil
        let db = nodes[b].needsGradient ? gradientBuffer(b) : nil
        let sign: Float = if case .subtract = node.op { -1 } else { 1 }
        let multiply = if case .multiply = node.op { true } else { false }
        broadcastLoop(node.shape, nodes[a].shape, nodes[b].shape) { o, i, j in
            da?[i] += multiply ? dz[o] * bv[j] : dz[o]
            db?[j] += multiply ? dz[o] * av[i] : sign * dz[o]
        }
    }
}

/// Numpy's broadcast of two shapes (aligned at the last axis; each pair equal or one of them 1), or nil.
func broadcastShape(_ a: Shape, _ b: Shape) -> Shape? {
    let rank = max(a.rank, b.rank)
    var dims: [Int] = []
    for i in 0..<rank {
        let x = i < rank - a.rank ? 1 : a[i - (rank - a.rank)]
        let y = i < rank - b.rank ? 1 : b[i - (rank - b.rank)]
        guard x == y || x == 1 || y == 1 else { return nil }
        dims.append(max(x, y))
    }
    return Shape(dims)
}

/// Calls body(o, i, j) for every flat index o of `out` with the flat indices i of `a` and j of `b` that
/// broadcast to it, in order.
@inline(__always)
func broadcastLoop(_ out: Shape, _ a: Shape, _ b: Shape, _ body: (Int, Int, Int) -> Void) {
    let o = out.padded
    let (pa, pb) = (a.padded, b.padded)
    /// Row-major strides of a padded shape, 0 along the axes it broadcasts.
    func strides(_ p: (Int, Int, Int, Int)) -> (Int, Int, Int, Int) {
        (
            p.0 == 1 ? 0 : p.1 * p.2 * p.3, p.1 == 1 ? 0 : p.2 * p.3, p.2 == 1 ? 0 : p.3, p.3 == 1 ? 0 : 1
        )
    }
    let (sa, sb) = (strides(pa), strides(pb))
    var flat = 0
    for i0 in 0..<o.0 {
        for i1 in 0..<o.1 {
            for i2 in 0..<o.2 {
                for i3 in 0..<o.3 {
                    body(
                        flat, i0 * sa.0 + i1 * sa.1 + i2 * sa.2 + i3 * sa.3,
                        i0 * sb.0 + i1 * sb.1 + i2 * sb.2 + i3 * sb.3)
                    flat += 1
                }
            }
        }
    }
}

/// A shape seen around one axis: (product of the axes before, the axis' length, product after); all values
/// as one axis when `axis` is nil.
func split(_ shape: Shape, _ axis: Int?) -> (Int, Int, Int) {
    guard let axis else { return (1, shape.count, 1) }
    let dims = shape.dims
    return (dims[..<axis].reduce(1, *), dims[axis], dims[(axis + 1)...].reduce(1, *))
}
