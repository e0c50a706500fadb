// GradientTape: TensorFlow's tape (Deep Learning with Python ch. 2), reverse-mode automatic differentiation.
// While a tape records (`try tape.record { … }`), every tensor operation computes its result at once (eagerly)
// and appends a node — the operation, its inputs, its output — to the tape. `gradient(of:withRespectTo:)` seeds
// ∂target/∂target = 1 and walks the nodes backwards, each adding its inputs' share of the gradient (the chain
// rule; a tensor used twice sums both shares). Values and gradients come from two arenas that a `reset()`
// recycles: a step that records the same operations as the last one allocates no memory.
import Foundation
import LoomKernels
import Synchronization

/// Records tensor operations and differentiates through them. One thread uses a tape at a time.
public final class GradientTape {
    /// Whether `gradient` may be called more than once on one recording (TensorFlow's `persistent`).
    public let persistent: Bool
    var nodes: [Node] = []
    let values = Arena()
    let gradients = Arena()
    let workspace = GemmWorkspace()
    /// Identity and recording generation, stamped on every tensor so a stale tensor is caught.
    let id: UInt64
    private(set) var generation: UInt64 = 1
    private var gradientTaken = false
    /// The weights of the `CustomLayer` whose call is being recorded, and that layer.
    var layerWeights: [Tensor] = []
    var layerWeightsOwner: ObjectIdentifier?
    private static let lastID = Atomic<UInt64>(0)

    /// A tape; `persistent` lets `gradient` be asked more than once per recording.
    public init(persistent: Bool = false) {
        self.persistent = persistent
        id = GradientTape.lastID.add(1, ordering: .relaxed).newValue
        nodes.reserveCapacity(64)
    }

    /// Buffers the arenas have allocated so far (constant from the second identical step on).
    public var allocations: Int { values.allocations + gradients.allocations }

    // MARK: Recording

    /// Runs `body` with this tape recording every tensor operation in it (on this thread).
    public func record<R, E: Error>(_ body: () throws(E) -> R) throws(E) -> R {
        let previous = currentTape()
        setCurrentTape(self)
        defer { setCurrentTape(previous) }
        return try body()
    }

    /// Forgets everything recorded (every tensor of this tape becomes invalid) and recycles the memory.
    public func reset() {
        nodes.removeAll(keepingCapacity: true)
        values.reset()
        gradients.reset()
        generation += 1
        gradientTaken = false
        layerWeights.removeAll(keepingCapacity: true)
        layerWeightsOwner = nil
    }

    /// This thread's own tape for layers' passes (one per worker thread, kept until the thread ends, so a step
    /// reuses the memory of the last one).
    static func ofThisThread() -> GradientTape {
        if let raw = pthread_getspecific(workerTapeKey) {
            return Unmanaged<GradientTape>.fromOpaque(raw).takeUnretainedValue()
        }
        let tape = GradientTape()
        pthread_setspecific(workerTapeKey, Unmanaged.passRetained(tape).toOpaque())
        return tape
    }

    /// The tape recording on this thread.
    static func recording() throws(TapeError) -> GradientTape {
        guard let tape = currentTape() else { throw .noTape }
        return tape
    }

    /// Makes `tensor` an input whose gradient `gradient` can return (variables are watched when read).
    @discardableResult
    public func watch(_ tensor: Tensor) throws(TapeError) -> Tensor {
        try check(tensor)
        nodes[Int(tensor.node)].watched = true
        nodes[Int(tensor.node)].needsGradient = true
        return tensor
    }

    /// A constant tensor holding a copy of `values`.
    public func constant(_ values: [Float], shape: Shape) throws(TapeError) -> Tensor {
        if let refusal = shape.refusal { throw .shapes(refusal) }
        guard values.count == shape.count else {
            throw .shapes("\(values.count) values cannot fill a tensor of shape \(shape)")
        }
        let out = self.values.take(shape.count)
        values.withUnsafeBufferPointer { out.update(from: $0.baseAddress!, count: values.count) }
        return append(Node(op: .constant, shape: shape, data: out))
    }

    /// A constant tensor over `pointer`'s floats (not copied: they must stay as they are while the tape is used).
    public func constant(wrapping pointer: UnsafeMutablePointer<Float>, shape: Shape) -> Tensor {
        append(Node(op: .constant, shape: shape, data: pointer))
    }

    /// The variable as a watched input of this tape (read once per recording; later reads give the same node).
    func read(_ variable: Variable) -> Tensor {
        if variable.tapeID == id && variable.generation == generation {
            return tensor(Int(variable.node))
        }
        var node = Node(op: .constant, shape: variable.shape, data: variable.buffer.pointer)
        node.watched = true
        node.needsGradient = true
        let t = append(node)
        (variable.tapeID, variable.generation, variable.node) = (id, generation, t.node)
        return t
    }

    func append(_ node: Node) -> Tensor {
        nodes.append(node)
        return tensor(nodes.count - 1)
    }

    func tensor(_ index: Int) -> Tensor {
        Tensor(
            shape: nodes[index].shape, data: nodes[index].data, node: Int32(index), tapeID: id, generation: generation)
    }

    /// `t` must be a tensor of this tape's current recording.
    func check(_ t: Tensor) throws(TapeError) {
        guard t.tapeID == id else {
            throw .released("a tensor of another tape was given to this one; compute it inside this tape's record")
        }
        guard t.generation == generation else {
            throw .released("a tensor from before the tape was reset was used; its memory has been reused")
        }
    }

    // MARK: Differentiation

    /// ∂target/∂x for each x of `variables` (each read inside a record of this tape): tensors of the variables'
    /// shapes, valid until the next `reset`. A target of several values is differentiated as their sum.
    public func gradient(of target: Tensor, withRespectTo variables: [Variable]) throws(TapeError) -> [Tensor] {
        for v in variables where v.tapeID != id || v.generation != generation {
            throw .notWatched(
                "variable '\(v.name)' was not read inside this tape's record, so the target does not depend on it through the tape"
            )
        }
        try backward(from: target)
        var result: [Tensor] = []
        result.reserveCapacity(variables.count)
        for v in variables { result.append(gradientTensor(Int(v.node))) }
        return result
    }

    /// ∂target/∂x for each watched tensor x of `sources` (see `watch`).
    public func gradient(of target: Tensor, withRespectTo sources: [Tensor]) throws(TapeError) -> [Tensor] {
        for s in sources {
            try check(s)
            guard nodes[Int(s.node)].watched else {
                throw .notWatched(
                    "the tensor of shape \(s.shape) is not watched: call tape.watch(x) before computing with it")
            }
        }
        try backward(from: target)
        return sources.map { gradientTensor(Int($0.node)) }
    }

    /// Accumulates every node's gradient from `target` down (reverse order of recording).
    func backward(from target: Tensor) throws(TapeError) {
        try check(target)
        guard persistent || !gradientTaken else {
            throw .released(
                "a non-persistent tape gives one set of gradients per recording; create it with GradientTape(persistent: true) to ask again, or reset() it"
            )
        }
        gradientTaken = true
        // Gradients of an earlier call (persistent tape) start again from zero.
        for i in nodes.indices { nodes[i].gradient = nil }
        gradients.reset()
        let t = Int(target.node)
        let seed = gradientBuffer(t)
        for j in 0..<nodes[t].shape.count { seed[j] = 1 }
        for i in stride(from: t, through: 0, by: -1) where nodes[i].needsGradient && nodes[i].gradient != nil {
            backward(node: i)
        }
    }

    /// The gradient buffer of node `i`, zeroed when first asked for.
    func gradientBuffer(_ i: Int) -> UnsafeMutablePointer<Float> {
        if let g = nodes[i].gradient { return g }
        let count = nodes[i].shape.count
        let g = gradients.take(count)
        g.initialize(repeating: 0, count: count)
        nodes[i].gradient = g
        return g
    }

    /// Node i's gradient as a constant tensor of this tape (zeros when the target does not depend on it).
    func gradientTensor(_ i: Int) -> Tensor {
        append(Node(op: .constant, shape: nodes[i].shape, data: gradientBuffer(i)))
    }
}

/// One recorded operation: what it computed (`data`, `shape`) from which nodes, and its gradient once backward
/// reaches it.
struct Node {
    var op: Op
    var shape: Shape
    var data: UnsafeMutablePointer<Float>
    var a: Int32 = -1
    var b: Int32 = -1
    /// Whether a watched input lies below (no gradient flows through other nodes).
    var needsGradient = false
    var watched = false
    var gradient: UnsafeMutablePointer<Float>?
}

/// Float buffers handed out in order and recycled by `reset`: the n-th request of a recording gets the n-th
/// buffer of the last one (grown if it is too small).
final class Arena {
    private var blocks: [AlignedBuffer] = []
    private var next = 0
    private(set) var allocations = 0

    func take(_ count: Int) -> UnsafeMutablePointer<Float> {
        defer { next += 1 }
        if next < blocks.count {
            if blocks[next].count >= count { return blocks[next].pointer }
            blocks[next] = AlignedBuffer(count: count, zeroed: false)
        } else {
            blocks.append(AlignedBuffer(count: count, zeroed: false))
        }
        allocations += 1
        return blocks[next].pointer
    }

    func reset() { next = 0 }
}

// The tape recording on each thread: a thread-specific pointer (no allocation, no reference count).
private let tapeKey: pthread_key_t = {
    var key = pthread_key_t()
    pthread_key_create(&key, nil)
    return key
}()

// Each thread's own tape for CustomLayer passes, released when the thread exits.
private let workerTapeKey: pthread_key_t = {
    var key = pthread_key_t()
    pthread_key_create(&key) { raw in
        if let raw { Unmanaged<GradientTape>.fromOpaque(raw).release() }
    }
    return key
}()

private func currentTape() -> GradientTape? {
    pthread_getspecific(tapeKey).map { Unmanaged<GradientTape>.fromOpaque($0).takeUnretainedValue() }
}

private func setCurrentTape(_ tape: GradientTape?) {
    pthread_setspecific(tapeKey, tape.map { Unmanaged.passUnretained($0).toOpaque() })
}
