// safetensors (https://huggingface.co/docs/safetensors): an 8-byte little-endian header length N, N bytes of
// JSON {"name": {"dtype": "F32", "shape": [...], "data_offsets": [begin, end]}, "__metadata__": {str: str}},
// then the raw little-endian tensor bytes. Loom writes F32 tensors (weights, optimizer state) and reads them
// back with every check a damaged or foreign file needs.
import Foundation

/// A tensor read from or written to a safetensors file (float32 only).
public struct NamedTensor: Equatable, Sendable {
    /// The tensor's name (`layers.0.kernel`).
    public var name: String
    /// Its dimensions.
    public var shape: [Int]
    /// Its values, row-major.
    public var values: [Float]
    /// A tensor of `shape` holding `values`.
    public init(name: String, shape: [Int], values: [Float]) {
        self.name = name
        self.shape = shape
        self.values = values
    }
}

/// Why a weights or checkpoint file cannot be used.
public enum WeightsError: Error, CustomStringConvertible, Equatable {
    /// The file cannot be read (path, reason).
    case unreadable(String, String)
    /// The file is not valid safetensors (path, reason).
    case corrupt(String, String)
    /// The file does not fit the model (path, reason).
    case mismatch(String, String)
    public var description: String {
        switch self {
        case .unreadable(let p, let why): "\(p): cannot read: \(why)"
        case .corrupt(let p, let why): "\(p): not a valid safetensors file: \(why)"
        case .mismatch(let p, let why): "\(p): \(why)"
        }
    }
}

/// The safetensors format: an 8-byte header length, a JSON header, then little-endian tensor data.
public enum SafeTensors {
    /// The file's bytes: header, then each tensor's data in the given order.
    public static func encode(_ tensors: [NamedTensor], metadata: [String: String]) -> Data {
        var header: [String: Any] = [:]
        var offset = 0
        for t in tensors {
            let bytes = t.values.count * 4
            header[t.name] =
                ["dtype": "F32", "shape": t.shape, "data_offsets": [offset, offset + bytes]] as [String: Any]
            offset += bytes
        }
        if !metadata.isEmpty { header["__metadata__"] = metadata }
        var json = (try? JSONSerialization.data(withJSONObject: header, options: [.sortedKeys])) ?? Data("{}".utf8)
        while json.count % 8 != 0 { json.append(0x20) }  // pad with spaces so the data starts 8-aligned
        var out = Data()
        var n = UInt64(json.count).littleEndian
        withUnsafeBytes(of: &n) { out.append(contentsOf: $0) }
        out.append(json)
        for t in tensors {
            t.values.withUnsafeBufferPointer { p in
                out.append(
                    UnsafeBufferPointer(
                        start: UnsafeRawPointer(p.baseAddress!).assumingMemoryBound(to: UInt8.self), count: p.count * 4)
                )
            }
        }
        return out
    }

    /// Reads and validates a file: header length within the file, JSON object, every entry F32 with a shape
    /// whose size matches its byte range, ranges inside the data, not overlapping, covering it exactly.
    public static func read(_ path: String) throws(WeightsError) -> (tensors: [NamedTensor], metadata: [String: String])
    {
        guard FileManager.default.fileExists(atPath: path) else { throw .unreadable(path, "no such file") }
        guard let data = FileManager.default.contents(atPath: path) else {
            throw .unreadable(path, "permission denied or not a file")
        }
        return try decode(data, path: path)
    }

    /// The tensors and metadata of a safetensors file's bytes.
    public static func decode(_ data: Data, path: String) throws(WeightsError) -> (
        tensors: [NamedTensor], metadata: [String: String]
    ) {
        let bytes = [UInt8](data)
        guard bytes.count >= 8 else {
            throw .corrupt(path, "\(bytes.count) bytes, shorter than the 8-byte header length")
        }
        var n: UInt64 = 0
        for i in 0..<8 { n |= UInt64(bytes[i]) << (8 * UInt64(i)) }
        guard n <= UInt64(bytes.count - 8) else {
            throw .corrupt(path, "header length \(n) runs past the end of the file (\(bytes.count) bytes)")
        }
        let headerEnd = 8 + Int(n)
        guard let object = try? JSONSerialization.jsonObject(with: Data(bytes[8..<headerEnd])),
            let header = object as? [String: Any]
        else {
            throw .corrupt(path, "the header is not a JSON object")
        }
        var metadata: [String: String] = [:]
        if let m = header["__metadata__"] {
            guard let m = m as? [String: String] else { throw .corrupt(path, "__metadata__ is not a map of strings") }
            metadata = m
        }
        let dataBytes = bytes.count - headerEnd
        var entries: [(String, [Int], Int, Int)] = []
        for (name, value) in header where name != "__metadata__" {
            guard let e = value as? [String: Any], let dtype = e["dtype"] as? String, let shape = e["shape"] as? [Int],
                let offsets = e["data_offsets"] as? [Int], offsets.count == 2
            else {
                throw .corrupt(path, "tensor '\(name)' lacks dtype, shape or data_offsets")
            }
            guard dtype == "F32" else { throw .mismatch(path, "tensor '\(name)' has dtype \(dtype); Loom reads F32") }
            guard shape.allSatisfy({ $0 >= 0 }), offsets[0] >= 0, offsets[0] <= offsets[1], offsets[1] <= dataBytes
            else {
                throw .corrupt(
                    path,
                    "tensor '\(name)': data_offsets \(offsets) outside the \(dataBytes) data bytes (truncated file?)")
            }
            guard shape.reduce(1, *) * 4 == offsets[1] - offsets[0] else {
                throw .corrupt(
                    path,
                    "tensor '\(name)': shape \(shape) needs \(shape.reduce(1, *) * 4) bytes, data_offsets give \(offsets[1] - offsets[0])"
                )
            }
            entries.append((name, shape, offsets[0], offsets[1]))
        }
        entries.sort { $0.2 < $1.2 }
        var expected = 0
        for e in entries {
            guard e.2 == expected else {
                throw .corrupt(
                    path, e.2 < expected ? "tensor '\(e.0)' overlaps another" : "a gap before tensor '\(e.0)'")
            }
            expected = e.3
        }
        guard expected == dataBytes else {
            throw .corrupt(path, "\(dataBytes - expected) bytes after the last tensor (or truncated)")
        }
        let tensors = entries.map { e -> NamedTensor in
            var values = [Float](repeating: 0, count: (e.3 - e.2) / 4)
            values.withUnsafeMutableBytes { dst in
                bytes.withUnsafeBytes { src in
                    dst.copyMemory(from: UnsafeRawBufferPointer(rebasing: src[headerEnd + e.2..<headerEnd + e.3]))
                }
            }
            return NamedTensor(name: e.0, shape: e.1, values: values)
        }
        return (tensors, metadata)
    }
}
