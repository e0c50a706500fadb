// Arrays from files: IDX of every element type the format defines, and NumPy's .npy, raw or gzip-compressed.
//   IDX   magic 0, 0, type, ndims; ndims big-endian UInt32 dimensions; big-endian values, row-major.
//         type 0x08 u8, 0x09 i8, 0x0B i16, 0x0C i32, 0x0D f32, 0x0E f64
//   .npy  "\x93NUMPY", version (1, 2 or 3), a little-endian header length (2 bytes in version 1, else 4), a
//         Python-literal header {'descr': '<f4', 'fortran_order': False, 'shape': (N, F), }, then the values.
//         Loom reads C-order, little-endian u1, i1, i2, i4, i8, f4, f8.
// Every header field is validated against the file's length before a value is read.
import Foundation

/// The numbers of an array file: unsigned bytes (kept as bytes: pixels), integers, or floats.
public enum ArrayValues: Sendable, Equatable {
    /// Unsigned bytes, kept as bytes (pixels).
    case bytes([UInt8])
    /// Integers of any width.
    case integers([Int64])
    /// Floating-point values (float64 narrowed to float32).
    case floats([Float])

    /// The number of values.
    public var count: Int {
        switch self {
        case .bytes(let v): v.count
        case .integers(let v): v.count
        case .floats(let v): v.count
        }
    }
}

/// An array read from an IDX or .npy file: its shape, element type (as NumPy names it) and values.
public struct NumericArray: Sendable, Equatable {
    /// The dimensions, outermost first.
    public var shape: [Int]
    /// The element type as NumPy names it (`uint8`, `float32`, …).
    public var elementType: String
    /// The values, row-major.
    public var values: ArrayValues
}

/// Reads an IDX or .npy file (gzip or raw), telling them apart by their first bytes, or one array of a .npz
/// archive (`file.npz:name`, see NPZ.swift). `hint` says what to change when the file does not exist.
public func readArray(path: String, hint: String = "") throws(DataError) -> NumericArray {
    #if canImport(ZIPFoundation)
        if let (archive, name) = npzReference(path) { return try readNPZ(archive: archive, name: name, hint: hint) }
    #endif
    let data = try readDataFile(path: path, hint: hint)
    if data.starts(with: npyMagic) { return try parseNPY(data, path: path) }
    if path.hasSuffix(".npz") {
        throw .corrupt(path, reason: "a .npz archive; save each array with numpy.save as its own .npy file")
    }
    return try NumericArray(idx: parseIDX(data, path: path), path: path)
}

extension NumericArray {
    /// The values of an IDX file (big-endian) in native form.
    init(idx: IDXArray, path: String) throws(DataError) {
        shape = idx.dimensions
        let b = idx.bytes
        let n = idx.dimensions.reduce(1, *)
        func word(_ i: Int, _ size: Int) -> UInt64 {
            var v: UInt64 = 0
            for k in 0..<size { v = v << 8 | UInt64(b[i * size + k]) }
            return v
        }
        switch idx.type {
        case 0x08:
            (elementType, values) = ("uint8", .bytes(b))
        case 0x09:
            (elementType, values) = ("int8", .integers((0..<n).map { Int64(Int8(bitPattern: b[$0])) }))
        case 0x0B:
            (elementType, values) = ("int16", .integers((0..<n).map { Int64(Int16(bitPattern: UInt16(word($0, 2)))) }))
        case 0x0C:
            (elementType, values) = ("int32", .integers((0..<n).map { Int64(Int32(bitPattern: UInt32(word($0, 4)))) }))
        case 0x0D:
            (elementType, values) = ("float32", .floats((0..<n).map { Float(bitPattern: UInt32(word($0, 4))) }))
        default:
            (elementType, values) = ("float64", .floats((0..<n).map { Float(Double(bitPattern: word($0, 8))) }))
        }
    }
}

let npyMagic: [UInt8] = [0x93, 0x4E, 0x55, 0x4D, 0x50, 0x59]  // "\x93NUMPY"

/// Parses the bytes of a .npy file (already decompressed).
public func parseNPY(_ data: [UInt8], path: String) throws(DataError) -> NumericArray {
    guard data.count >= 10, data.starts(with: npyMagic) else {
        throw .corrupt(path, reason: "not a .npy file (it does not start with \\x93NUMPY)")
    }
    let major = data[6]
    guard (1...3).contains(major) else {
        throw .corrupt(path, reason: ".npy format version \(major) is not one Loom reads (1, 2 or 3)")
    }
    let lengthBytes = major == 1 ? 2 : 4
    guard data.count >= 8 + lengthBytes else { throw .truncated(path, expected: 8 + lengthBytes, found: data.count) }
    var headerLength = 0
    for k in 0..<lengthBytes { headerLength |= Int(data[8 + k]) << (8 * k) }
    let start = 8 + lengthBytes
    guard data.count >= start + headerLength else {
        throw .truncated(path, expected: start + headerLength, found: data.count)
    }
    let header = String(decoding: data[start..<start + headerLength], as: UTF8.self)
    func field(_ key: String) throws(DataError) -> Substring {
        guard let r = header.range(of: "'\(key)':") else {
            throw .corrupt(
                path,
                reason:
                    "the .npy header has no '\(key)' (header: \(header.trimmingCharacters(in: .whitespacesAndNewlines)))"
            )
        }
        return header[r.upperBound...].drop { $0 == " " }
    }
    let descrField = try field("descr")
    guard descrField.first == "'", let close = descrField.dropFirst().firstIndex(of: "'") else {
        throw .corrupt(path, reason: "the .npy header's 'descr' is not a type string")
    }
    let descr = String(descrField[descrField.index(after: descrField.startIndex)..<close])
    if try field("fortran_order").hasPrefix("True") {
        throw .corrupt(path, reason: "the array is in Fortran order; save numpy.ascontiguousarray(a) instead")
    }
    let shapeField = try field("shape")
    guard shapeField.first == "(", let end = shapeField.firstIndex(of: ")") else {
        throw .corrupt(path, reason: "the .npy header's 'shape' is not a tuple")
    }
    var shape: [Int] = []
    for part in shapeField[shapeField.index(after: shapeField.startIndex)..<end].split(separator: ",") {
        let text = part.trimmingCharacters(in: .whitespaces)
        guard !text.isEmpty else { continue }
        guard let d = Int(text), d >= 0 else { throw .corrupt(path, reason: "the .npy shape holds '\(text)'") }
        shape.append(d)
    }
    var count = 1
    for d in shape {
        let (p, overflow) = count.multipliedReportingOverflow(by: d)
        if overflow || p > 1 << 34 { throw .corrupt(path, reason: "the .npy shape \(shape) is implausibly large") }
        count = p
    }
    let kinds: [String: (name: String, size: Int)] = [
        "u1": ("uint8", 1), "i1": ("int8", 1), "i2": ("int16", 2), "i4": ("int32", 4), "i8": ("int64", 8),
        "f4": ("float32", 4), "f8": ("float64", 8),
    ]
    let order = descr.first ?? " "
    let code = String(descr.dropFirst())
    // '<' little-endian, '|' single bytes, '=' native (little-endian on x86-64).
    guard let kind = kinds[code], order == "<" || order == "|" || order == "=" else {
        if order == ">" {
            throw .corrupt(path, reason: "big-endian values ('\(descr)'); save a.astype('<\(code)') instead")
        }
        throw .corrupt(
            path,
            reason:
                "values of type '\(descr)', which Loom does not read; save them as float32 ('<f4'), float64, uint8, int8, int16, int32 or int64"
        )
    }
    let body = start + headerLength
    let expected = body + count * kind.size
    guard data.count >= expected else { throw .truncated(path, expected: expected, found: data.count) }
    guard data.count == expected else {
        throw .corrupt(path, reason: "\(data.count - expected) bytes after the values the header describes")
    }
    func word(_ i: Int) -> UInt64 {
        var v: UInt64 = 0
        for k in stride(from: kind.size - 1, through: 0, by: -1) { v = v << 8 | UInt64(data[body + i * kind.size + k]) }
        return v
    }
    let values: ArrayValues
    switch code {
    case "u1": values = .bytes(Array(data[body..<expected]))
    case "i1": values = .integers((0..<count).map { Int64(Int8(bitPattern: data[body + $0])) })
    case "i2": values = .integers((0..<count).map { Int64(Int16(bitPattern: UInt16(word($0)))) })
    case "i4": values = .integers((0..<count).map { Int64(Int32(bitPattern: UInt32(word($0)))) })
    case "i8": values = .integers((0..<count).map { Int64(bitPattern: word($0)) })
    case "f4": values = .floats((0..<count).map { Float(bitPattern: UInt32(word($0))) })
    default: values = .floats((0..<count).map { Float(Double(bitPattern: word($0))) })
    }
    return NumericArray(shape: shape, elementType: kind.name, values: values)
}

extension NumericArray {
    /// Values per sample: the first dimension counts the samples.
    public var featuresPerSample: Int { shape.dropFirst().reduce(1, *) }

    /// Sample `i`'s values as floats, multiplied by `scale` (default: bytes as pixels, scaled to [0, 1]; other
    /// types as they are).
    public func sample(_ i: Int, scale: Float? = nil) -> [Float] {
        let per = featuresPerSample
        let range = i * per..<(i + 1) * per
        switch values {
        case .bytes(let b): return b[range].map { Float($0) * (scale ?? 1 / 255) }
        case .integers(let v): return v[range].map { Float($0) * (scale ?? 1) }
        case .floats(let v): return v[range].map { $0 * (scale ?? 1) }
        }
    }

    /// The array as class labels: one non-negative whole number per sample (a vector, or one column).
    func classLabels(path: String) throws(DataError) -> [Int32] {
        guard shape.count == 1 || (shape.count == 2 && shape[1] == 1) else {
            throw .mismatch(
                path,
                reason:
                    "expected one label per sample (shape (N,) or (N, 1)), found shape (\(shape.map(String.init).joined(separator: ", "))); one-hot or soft targets (N, C) need categorical_crossentropy or a regression loss"
            )
        }
        func label(_ i: Int, _ v: Double) throws(DataError) -> Int32 {
            guard v >= 0, v < Double(Int32.max), v.rounded() == v else {
                let reason =
                    v.isFinite && v.rounded() != v
                    ? "sample \(i) has the real-valued target \(v), but the loss is a classifier's (class indices 0, 1, 2, …); for regression use mean_squared_error, mean_absolute_error or huber, or set data.targets: values"
                    : "sample \(i) has the label \(v); labels must be class indices 0 … 2³¹−2"
                throw .mismatch(path, reason: reason)
            }
            return Int32(v)
        }
        switch values {
        case .bytes(let b): return b.map { Int32($0) }
        case .integers(let v):
            var out = [Int32](repeating: 0, count: v.count)
            for (i, x) in v.enumerated() { out[i] = try label(i, Double(x)) }
            return out
        case .floats(let v):
            var out = [Int32](repeating: 0, count: v.count)
            for (i, x) in v.enumerated() { out[i] = try label(i, Double(x)) }
            return out
        }
    }

    /// Real-valued targets: shape (N,) (one per sample) or (N, T); every value finite.
    func valueTargets(path: String) throws(DataError) -> (values: [Float], width: Int) {
        guard shape.count == 1 || shape.count == 2, shape.count == 1 || shape[1] > 0 else {
            throw .mismatch(
                path,
                reason:
                    "expected targets of shape (N,) or (N, T), found shape (\(shape.map(String.init).joined(separator: ", ")))"
            )
        }
        let floats: [Float]
        switch values {
        case .bytes(let b): floats = b.map { Float($0) }
        case .integers(let v): floats = v.map { Float($0) }
        case .floats(let v): floats = v
        }
        let width = shape.count == 2 ? shape[1] : 1
        if let i = floats.firstIndex(where: { !$0.isFinite }) {
            throw .mismatch(
                path, reason: "sample \(i / width), target \(i % width) is not a finite number; fill or drop it first")
        }
        return (floats, width)
    }

    /// The first value that is not finite, as (sample, feature), if any.
    func firstNonFinite() -> (Int, Int)? {
        guard case .floats(let v) = values, let i = v.firstIndex(where: { !$0.isFinite }) else { return nil }
        let per = max(1, featuresPerSample)
        return (i / per, i % per)
    }
}
