// Tensor: Deep Learning with Python ch. 2's tensors, for user code — a shape (rank 0 to 4) over Float32 values in
// 64-byte-aligned memory. A tensor is a small value (a pointer, a shape and the node that made it): copying one
// copies no floats and touches no reference count. Its floats live in the arena of the tape that computed it, or,
// for a `Variable`, in the variable's own buffer.
import LoomKernels

/// The dimensions of a tensor: rank 0 (a scalar) to 4, row-major.
public struct Shape: Equatable, Sendable, CustomStringConvertible, ExpressibleByArrayLiteral {
    /// The number of dimensions (0 for a scalar).
    public let rank: Int
    private var storage: (Int, Int, Int, Int)

    /// Why the dimensions given cannot be a shape (more than 4, or a negative one), nil when they can. Such a
    /// shape holds no values; a tape or a variable given it throws this line.
    public let refusal: String?

    /// A shape of up to 4 non-negative dimensions.
    public init(_ dims: [Int]) {
        if dims.count > 4 || dims.contains(where: { $0 < 0 }) {
            refusal = "shape \(dims): tensors have up to 4 dimensions, each 0 or more"
            rank = 0
            storage = (0, 1, 1, 1)
            return
        }
        refusal = nil
        rank = dims.count
        storage = (
            dims.count > 0 ? dims[0] : 1, dims.count > 1 ? dims[1] : 1, dims.count > 2 ? dims[2] : 1,
            dims.count > 3 ? dims[3] : 1
        )
    }

    public init(arrayLiteral dims: Int...) { self.init(dims) }

    /// Dimension `i` (0 ..< rank).
    public subscript(_ i: Int) -> Int {
        switch i {
        case 0: storage.0
        case 1: storage.1
        case 2: storage.2
        default: storage.3
        }
    }

    /// The dimensions, outermost first.
    public var dims: [Int] { (0..<rank).map { self[$0] } }
    /// The number of values.
    public var count: Int { storage.0 * storage.1 * storage.2 * storage.3 }
    public var description: String { "(" + dims.map(String.init).joined(separator: ", ") + (rank == 1 ? ",)" : ")") }

    public static func == (a: Shape, b: Shape) -> Bool { a.rank == b.rank && a.dims == b.dims }

    /// The shape padded with leading 1s to rank 4 (for broadcasting), as four dimensions.
    var padded: (Int, Int, Int, Int) {
        var d = [1, 1, 1, 1]
        for i in 0..<rank { d[4 - rank + i] = self[i] }
        return (d[0], d[1], d[2], d[3])
    }
}

/// A tensor: a shape and its values, computed by the operations of a `GradientTape` (which records them) or
/// standing for a `Variable`'s values.
public struct Tensor: CustomStringConvertible {
    /// The tensor's dimensions.
    public let shape: Shape
    /// The values, row-major (`shape.count` of them); valid until the tape that made them is reset.
    public let data: UnsafeMutablePointer<Float>
    /// The tape's node that holds this tensor, and the tape's identity and generation when it was made (a tensor
    /// read after its tape was reset or released is refused, not read).
    let node: Int32
    let tapeID: UInt64
    let generation: UInt64

    init(shape: Shape, data: UnsafeMutablePointer<Float>, node: Int32, tapeID: UInt64, generation: UInt64) {
        self.shape = shape
        self.data = data
        self.node = node
        self.tapeID = tapeID
        self.generation = generation
    }

    /// The values as an array (a copy).
    public var scalars: [Float] { Array(UnsafeBufferPointer(start: data, count: shape.count)) }
    /// The only value of a tensor of one value.
    public var scalar: Float { data[0] }
    public var description: String { "Tensor\(shape) \(shape.count <= 8 ? "\(scalars)" : "")" }
}

/// A trainable tensor that outlives tapes (Keras' `tf.Variable`): a layer's weights. Reading `value` inside a
/// tape's `record` makes it a watched input of that tape; `assign`/`update` change it between steps.
public final class Variable {
    /// The variable's dimensions.
    public let shape: Shape
    /// The name in messages.
    public let name: String
    /// The values, 64-byte aligned.
    public let buffer: AlignedBuffer
    /// The node this variable is on the tape that read it last (so a second read in one step is the same node).
    var tapeID: UInt64 = 0
    var generation: UInt64 = 0
    var node: Int32 = -1

    /// A variable of `shape` holding `values` (shape.count of them).
    public init(_ values: [Float], shape: Shape, name: String = "variable") throws(TapeError) {
        if let refusal = shape.refusal { throw .shapes(refusal) }
        guard values.count == shape.count else {
            throw .shapes("variable '\(name)': \(values.count) values cannot fill shape \(shape)")
        }
        self.shape = shape
        self.name = name
        buffer = AlignedBuffer(count: shape.count)
        values.withUnsafeBufferPointer { buffer.pointer.update(from: $0.baseAddress!, count: values.count) }
    }

    /// The values as an array (a copy).
    public var scalars: [Float] { Array(UnsafeBufferPointer(start: buffer.pointer, count: shape.count)) }

    /// The variable as a tensor of the tape now recording (a watched input of it).
    public var value: Tensor {
        get throws(TapeError) { try GradientTape.recording().read(self) }
    }

    /// values[i] = f(values[i], other[i]) for each value: an optimizer's step (`other`: the gradient).
    public func update(with other: Tensor, _ f: (Float, Float) -> Float) throws(TapeError) {
        guard other.shape.count == shape.count else {
            throw .shapes(
                "variable '\(name)' of shape \(shape) cannot be updated with a tensor of shape \(other.shape)")
        }
        let p = buffer.pointer
        for i in 0..<shape.count { p[i] = f(p[i], other.data[i]) }
    }
}

/// What a tape refuses, each with one line that says what to do.
public enum TapeError: Error, Equatable, CustomStringConvertible {
    /// An operation outside any tape's `record`.
    case noTape
    /// Two shapes an operation cannot combine.
    case shapes(String)
    /// `gradient` asked for a tensor the tape does not watch.
    case notWatched(String)
    /// A tensor of another tape, or of this one before a reset, or a second `gradient` of a non-persistent tape.
    case released(String)
    /// An argument out of range (an axis, a label).
    case argument(String)

    public var description: String {
        switch self {
        case .noTape:
            "a tensor operation ran outside a tape: compute inside `try tape.record { … }`"
        case .shapes(let m), .notWatched(let m), .released(let m), .argument(let m): m
        }
    }
}
