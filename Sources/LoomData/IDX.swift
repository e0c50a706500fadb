// IDX, the format of MNIST and Fashion-MNIST: a 4-byte magic (0, 0, type, ndims), ndims big-endian UInt32
// dimensions, then the data, row-major and big-endian, raw or gzip-compressed. Every type the format defines is
// read: 0x08 unsigned byte, 0x09 signed byte, 0x0B int16, 0x0C int32, 0x0D float32, 0x0E float64
// (Arrays.swift turns them into numbers).
import CLoomZlib
import Foundation

/// Why a data file could not be used. Each names the file and says what to do.
public enum DataError: Error, CustomStringConvertible, Equatable {
    /// The file does not exist; `hint` says where Loom looked or what to pass.
    case missingFile(String, hint: String)
    /// The file exists but cannot be read.
    case unreadable(String, reason: String)
    /// The file is neither IDX nor .npy.
    case badMagic(String, found: String)
    /// The file is shorter than its header promises.
    case truncated(String, expected: Int, found: Int)
    /// The file's contents are inconsistent.
    case corrupt(String, reason: String)
    /// Two files disagree (e.g. sample and label counts).
    case mismatch(String, reason: String)
    /// A dataset name Loom does not know.
    case unknownDataset(String, known: [String])

    public var description: String {
        switch self {
        case .missingFile(let p, let hint): "\(p): no such file; \(hint)"
        case .unreadable(let p, let reason): "\(p): cannot read: \(reason)"
        case .badMagic(let p, let found):
            "\(p): neither an IDX nor a .npy file (magic number \(found); IDX starts 00 00, then a type 08, 09, 0B, 0C, 0D or 0E and 1-4 dimensions)"
        case .truncated(let p, let expected, let found):
            "\(p): truncated IDX file: the header promises \(expected) bytes, the file holds \(found)"
        case .corrupt(let p, let reason): "\(p): corrupt: \(reason)"
        case .mismatch(let p, let reason): "\(p): \(reason)"
        case .unknownDataset(let name, let known):
            "unknown dataset '\(name)'; known datasets: \(known.joined(separator: ", ")), or an IDX pair by path"
        }
    }
}

/// The dimensions, element type and (big-endian) value bytes of one IDX file.
public struct IDXArray {
    /// The dimensions, outermost first.
    public var dimensions: [Int]
    /// The values' bytes, big-endian.
    public var bytes: [UInt8]
    /// 0x08 u8, 0x09 i8, 0x0B i16, 0x0C i32, 0x0D f32, 0x0E f64.
    public var type: UInt8 = 0x08
}

/// Bytes per value of each IDX type.
let idxSizes: [UInt8: Int] = [0x08: 1, 0x09: 1, 0x0B: 2, 0x0C: 4, 0x0D: 4, 0x0E: 8]

/// Reads an IDX file (gzip or raw), validating magic, dimensions and length.
/// `hint` says what to change when the file does not exist.
public func readIDX(path: String, hint: String = "") throws(DataError) -> IDXArray {
    try parseIDX(readDataFile(path: path, hint: hint), path: path)
}

/// A data file's bytes, inflated when it is gzip-compressed; `hint` says what to change when it is missing.
func readDataFile(path: String, hint: String) throws(DataError) -> [UInt8] {
    guard FileManager.default.fileExists(atPath: path) else {
        throw .missingFile(path, hint: hint.isEmpty ? "check the path" : hint)
    }
    guard let raw = FileManager.default.contents(atPath: path) else {
        throw .unreadable(path, reason: "permission denied or not a regular file")
    }
    let data = [UInt8](raw)
    return data.count >= 2 && data[0] == 0x1f && data[1] == 0x8b ? try gunzip(data, path: path) : data
}

/// Parses IDX bytes (already decompressed).
public func parseIDX(_ data: [UInt8], path: String) throws(DataError) -> IDXArray {
    guard data.count >= 4 else { throw .truncated(path, expected: 4, found: data.count) }
    let magic = data[0..<4].map { String(format: "%02x", $0) }.joined()
    guard data[0] == 0, data[1] == 0, let size = idxSizes[data[2]], (1...4).contains(Int(data[3])) else {
        throw .badMagic(path, found: "0x" + magic)
    }
    let ndims = Int(data[3])
    let header = 4 + 4 * ndims
    guard data.count >= header else { throw .truncated(path, expected: header, found: data.count) }
    var dims: [Int] = []
    var total = 1
    for d in 0..<ndims {
        let o = 4 + 4 * d
        let v = Int(data[o]) << 24 | Int(data[o + 1]) << 16 | Int(data[o + 2]) << 8 | Int(data[o + 3])
        dims.append(v)
        let (product, overflow) = total.multipliedReportingOverflow(by: v)
        // (Found by the fuzzer: a wrapped-around product let a later subtraction overflow and trap.)
        if overflow || product > 1 << 34 { throw .corrupt(path, reason: "dimensions \(dims) are implausibly large") }
        total = product
    }
    total *= size
    guard data.count >= header + total else { throw .truncated(path, expected: header + total, found: data.count) }
    guard data.count == header + total else {
        throw .corrupt(path, reason: "\(data.count - header - total) bytes after the data the header describes")
    }
    return IDXArray(dimensions: dims, bytes: Array(data[header...]), type: data[2])
}

/// Inflates a gzip stream with zlib.
func gunzip(_ input: [UInt8], path: String) throws(DataError) -> [UInt8] {
    var stream = z_stream()
    guard inflateInit2_(&stream, 16 + MAX_WBITS, ZLIB_VERSION, Int32(MemoryLayout<z_stream>.size)) == Z_OK else {
        throw .corrupt(path, reason: "zlib could not start")
    }
    defer { inflateEnd(&stream) }
    var output = [UInt8]()
    output.reserveCapacity(input.count * 4)
    var chunk = [UInt8](repeating: 0, count: 1 << 20)
    var status: Int32 = Z_OK
    var input = input
    input.withUnsafeMutableBufferPointer { inp in
        stream.next_in = inp.baseAddress
        stream.avail_in = uInt(inp.count)
        repeat {
            chunk.withUnsafeMutableBufferPointer { out in
                stream.next_out = out.baseAddress
                stream.avail_out = uInt(out.count)
                status = inflate(&stream, Z_NO_FLUSH)
                output.append(contentsOf: out[0..<(out.count - Int(stream.avail_out))])
            }
        } while status == Z_OK
    }
    guard status == Z_STREAM_END else {
        throw .corrupt(
            path,
            reason: status == Z_BUF_ERROR
                ? "the gzip stream ends early (truncated download?)"
                : "bad gzip data (zlib error \(status))")
    }
    return output
}
