import Foundation
import LoomTestSupport
import Testing
import ZIPFoundation

@testable import LoomData

/// A .npy file as numpy.save writes it: magic, version, header length, a padded Python-literal header, values.
func npyBytes(
    descr: String, shape: [Int], values: [UInt8], version: UInt8 = 1, fortran: Bool = false, header: String? = nil
) -> [UInt8] {
    let shapeText = shape.count == 1 ? "(\(shape[0]),)" : "(" + shape.map(String.init).joined(separator: ", ") + ")"
    var text =
        header ?? "{'descr': '\(descr)', 'fortran_order': \(fortran ? "True" : "False"), 'shape': \(shapeText), }"
    let lengthBytes = version == 1 ? 2 : 4
    while (10 + lengthBytes - 2 + text.utf8.count + 1) % 64 != 0 { text += " " }
    text += "\n"
    var out: [UInt8] = [0x93] + Array("NUMPY".utf8) + [version, 0]
    let n = text.utf8.count
    for k in 0..<lengthBytes { out.append(UInt8(n >> (8 * k) & 255)) }
    return out + Array(text.utf8) + values
}

/// Little-endian bytes of values.
func le<T: FixedWidthInteger>(_ xs: [T]) -> [UInt8] {
    xs.flatMap { x in (0..<T.bitWidth / 8).map { UInt8(truncatingIfNeeded: x >> (8 * $0)) } }
}
func leFloats(_ xs: [Float]) -> [UInt8] { le(xs.map(\.bitPattern)) }
func leDoubles(_ xs: [Double]) -> [UInt8] { le(xs.map(\.bitPattern)) }
/// Big-endian bytes (IDX).
func be<T: FixedWidthInteger>(_ xs: [T]) -> [UInt8] {
    xs.flatMap { x in (0..<T.bitWidth / 8).reversed().map { UInt8(truncatingIfNeeded: x >> (8 * $0)) } }
}

@Suite("Array files: IDX of every type, NumPy .npy")
struct ArrayTests {
    @Test("IDX: u8, i8, i16, i32, f32 and f64 read back as the same numbers")
    func idxTypes() throws {
        let dir = temporaryFolder("loom-data")
        let cases: [(UInt8, [UInt8], ArrayValues)] = [
            (0x08, [1, 200], .bytes([1, 200])),
            (0x09, [0xFF, 5], .integers([-1, 5])),
            (0x0B, be([Int16(-300), 7].map { UInt16(bitPattern: $0) }), .integers([-300, 7])),
            (0x0C, be([Int32(-70000), 123_456].map { UInt32(bitPattern: $0) }), .integers([-70000, 123_456])),
            (0x0D, be([Float(1.5), -2.25].map(\.bitPattern)), .floats([1.5, -2.25])),
            (0x0E, be([Double(0.1), 1e300].map(\.bitPattern)), .floats([Float(0.1), .infinity])),
        ]
        for (type, bytes, expected) in cases {
            let path = dir + "/t\(type)"
            write(idxBytes([2], bytes, magicType: type), path)
            let a = try readArray(path: path)
            #expect(a.shape == [2] && a.values == expected, "type \(type)")
        }
    }

    @Test("npy: every supported dtype, versions 1 and 2, gzip, 1-D and 2-D")
    func npyTypes() throws {
        let dir = temporaryFolder("loom-data")
        let cases: [(String, [UInt8], ArrayValues)] = [
            ("|u1", [3, 250, 0, 1], .bytes([3, 250, 0, 1])),
            ("|i1", [0xFE, 1, 2, 3], .integers([-2, 1, 2, 3])),
            ("<i2", le([Int16(-2), 300, 0, 1]), .integers([-2, 300, 0, 1])),
            ("<i4", le([Int32(-5), 70000, 0, 1]), .integers([-5, 70000, 0, 1])),
            ("<i8", le([Int64(1) << 40, -1, 0, 9]), .integers([1 << 40, -1, 0, 9])),
            ("<f4", leFloats([0.5, -1, 3.25, 0]), .floats([0.5, -1, 3.25, 0])),
            ("<f8", leDoubles([0.5, -1, 3.25, 1e-3]), .floats([0.5, -1, 3.25, Float(1e-3)])),
        ]
        for (version, gzip) in [(UInt8(1), false), (2, true)] {
            for (descr, bytes, expected) in cases {
                let path = dir + "/a\(descr.dropFirst())v\(version).npy"
                write(npyBytes(descr: descr, shape: [2, 2], values: bytes, version: version), path, gzip: gzip)
                let a = try readArray(path: path + (gzip ? ".gz" : ""))
                #expect(a.shape == [2, 2] && a.values == expected && a.featuresPerSample == 2, "\(descr) v\(version)")
            }
        }
    }

    @Test("malformed .npy files: one line naming the file and what to do")
    func npyErrors() {
        let dir = temporaryFolder("loom-data")
        let good = npyBytes(descr: "<f4", shape: [2, 3], values: leFloats([1, 2, 3, 4, 5, 6]))
        let cases: [(String, [UInt8], String)] = [
            ("truncated", Array(good.prefix(good.count - 5)), "truncated"),
            ("header cut", Array(good.prefix(20)), "truncated"),
            ("extra", good + [0, 0, 0, 0], "bytes after the values"),
            (
                "fortran", npyBytes(descr: "<f4", shape: [2, 3], values: leFloats([1, 2, 3, 4, 5, 6]), fortran: true),
                "Fortran order"
            ),
            ("big-endian", npyBytes(descr: ">f4", shape: [2], values: [0, 0, 0, 0, 0, 0, 0, 0]), "big-endian"),
            ("complex", npyBytes(descr: "<c8", shape: [1], values: [UInt8](repeating: 0, count: 8)), "does not read"),
            ("object", npyBytes(descr: "|O", shape: [1], values: [UInt8](repeating: 0, count: 8)), "does not read"),
            (
                "no shape",
                npyBytes(descr: "", shape: [], values: [], header: "{'descr': '<f4', 'fortran_order': False, }"),
                "no 'shape'"
            ),
            (
                "bad shape",
                npyBytes(
                    descr: "", shape: [], values: [],
                    header: "{'descr': '<f4', 'fortran_order': False, 'shape': (2, x), }"), "shape holds"
            ),
            ("huge", npyBytes(descr: "<f4", shape: [1 << 30, 1 << 30], values: []), "implausibly large"),
            ("version 9", Array(good.prefix(6)) + [9] + Array(good.dropFirst(7)), "version 9"),
        ]
        for (name, bytes, expected) in cases {
            let path = dir + "/\(name).npy"
            write(bytes, path)
            #expect(throws: DataError.self, "\(name)") { try readArray(path: path) }
            do { _ = try readArray(path: path) } catch {
                #expect("\(error)".contains(path) && "\(error)".contains(expected), "\(name): \(error)")
                #expect(!"\(error)".contains("\n"))
            }
        }
        write(good, dir + "/a.npz")
        #expect(throws: Never.self) { try readArray(path: dir + "/a.npz") }  // a .npy under another name still reads
        write([0x50, 0x4B, 3, 4, 0, 0, 0, 0], dir + "/b.npz")
        #expect { try readArray(path: dir + "/b.npz") } throws: { "\($0)".contains("numpy.savez") }
    }

    @Test("samples and labels from .npy and IDX: float features, any integer labels, more than 256 classes")
    func datasets() throws {
        let dir = temporaryFolder("loom-data")
        write(npyBytes(descr: "<f8", shape: [3, 2], values: leDoubles([1, 2, 3, 4, 5, 6])), dir + "/x.npy")
        write(npyBytes(descr: "<i8", shape: [3], values: le([Int64(0), 299, 7])), dir + "/y.npy")
        let d = try loadIDX(images: dir + "/x.npy", labels: dir + "/y.npy", name: "t")
        #expect(d.count == 3 && d.features == 2 && d.classes == 300)
        var rows = [Float](repeating: 0, count: 6)
        var labels = [Int32](repeating: 0, count: 3)
        rows.withUnsafeMutableBufferPointer { r in
            labels.withUnsafeMutableBufferPointer { l in
                d.gather(range: 0, count: 3, into: r.baseAddress!, ld: 2, labels: l.baseAddress!)
            }
        }
        #expect(rows == [1, 2, 3, 4, 5, 6] && labels == [0, 299, 7])
        // Labels as an (N, 1) column of whole floats are class indices too.
        write(npyBytes(descr: "<f4", shape: [3, 1], values: leFloats([2, 0, 1])), dir + "/yf.npy")
        #expect(try loadIDX(images: dir + "/x.npy", labels: dir + "/yf.npy", name: "t").classes == 3)
    }

    @Test("data errors: rows that do not match, NaN, real-valued or negative labels, labels of three dimensions")
    func datasetErrors() {
        let dir = temporaryFolder("loom-data")
        write(npyBytes(descr: "<f4", shape: [3, 2], values: leFloats([1, 2, 3, .nan, 5, 6])), dir + "/nan.npy")
        write(npyBytes(descr: "<f4", shape: [3, 2], values: leFloats([1, 2, 3, 4, 5, 6])), dir + "/x.npy")
        write(npyBytes(descr: "<i4", shape: [2], values: le([Int32(0), 1])), dir + "/two.npy")
        write(npyBytes(descr: "<i4", shape: [3], values: le([Int32(0), 1, 2])), dir + "/y.npy")
        write(npyBytes(descr: "<f4", shape: [3], values: leFloats([0.5, 1, 2])), dir + "/real.npy")
        write(npyBytes(descr: "<i2", shape: [3], values: le([Int16(0), -1, 2])), dir + "/negative.npy")
        // (2-D labels of several columns are one-hot or soft targets: arrayTargets.)
        write(npyBytes(descr: "<i4", shape: [3, 1, 2], values: le([Int32(0), 1, 2, 0, 1, 2])), dir + "/wide.npy")
        let cases: [(String, String, String)] = [
            ("nan.npy", "y.npy", "sample 1, value 1 is not a finite number"),
            ("x.npy", "two.npy", "holds 2 labels but"),
            ("x.npy", "real.npy", "real-valued target 0.5"),
            ("x.npy", "negative.npy", "sample 1 has the label -1.0"),
            ("x.npy", "wide.npy", "one label per sample"),
            ("y.npy", "y.npy", "2 or more dimensions"),
        ]
        for (x, y, expected) in cases {
            #expect { try loadIDX(images: dir + "/" + x, labels: dir + "/" + y, name: "t") } throws: {
                "\($0)".contains(expected)
            }
        }
    }

    @Test("targets from arrays: 2-D (N, C) rows are real values; 1-D as values when asked; non-finite refused")
    func arrayTargets() throws {
        let dir = temporaryFolder("loom-data")
        write(npyBytes(descr: "<f4", shape: [3, 2], values: leFloats([1, 2, 3, 4, 5, 6])), dir + "/x.npy")
        write(npyBytes(descr: "<f4", shape: [3, 2], values: leFloats([0.25, 0.75, 1, 0, 0.5, 0.5])), dir + "/y2.npy")
        write(npyBytes(descr: "<f8", shape: [3], values: leDoubles([1.5, -2, 0.125])), dir + "/y1.npy")
        write(npyBytes(descr: "<f4", shape: [3], values: leFloats([1, .infinity, 0])), dir + "/bad.npy")
        let soft = try loadIDX(images: dir + "/x.npy", labels: dir + "/y2.npy", name: "t")
        #expect(soft.targetWidth == 2 && soft.targetArray == [0.25, 0.75, 1, 0, 0.5, 0.5])
        #expect((0..<3).map { soft.label($0) } == [1, 0, 0])  // the largest target's index
        let values = try loadIDX(images: dir + "/x.npy", labels: dir + "/y1.npy", name: "t", valueTargets: true)
        #expect(values.targetWidth == 1 && values.targetArray == [1.5, -2, 0.125])
        // As class labels, a real value is refused with the fix.
        #expect { try loadIDX(images: dir + "/x.npy", labels: dir + "/y1.npy", name: "t") } throws: {
            "\($0)".contains("real-valued target 1.5") && "\($0)".contains("mean_squared_error")
        }
        #expect {
            try loadIDX(images: dir + "/x.npy", labels: dir + "/bad.npy", name: "t", valueTargets: true)
        } throws: {
            "\($0)".contains("sample 1, target 0 is not a finite number") && "\($0)".contains("bad.npy")
        }
        // Targets and weights survive subsets and gathering.
        let weighted = values.weighted([1, 2, 3]).subset(1..<3)
        #expect(weighted.count == 2 && weighted.weight(0) == 2 && weighted.target(1, 0) == 0.125)
        var rows = [Float](repeating: 0, count: 4)
        var labels = [Int32](repeating: 0, count: 2)
        var targets = [Float](repeating: 0, count: 2)
        var weights = [Float](repeating: 0, count: 2)
        weighted.gather(
            range: 0, count: 2, into: &rows, ld: 2, labels: &labels, targets: &targets, weights: &weights)
        #expect(rows == [3, 4, 5, 6] && targets == [-2, 0.125] && weights == [2, 3])
    }

    /// A .npz archive of `arrays` (name → .npy bytes), stored or deflated as numpy.savez(_compressed) writes them.
    func npz(_ path: String, _ arrays: [(String, [UInt8])], compressed: Bool) throws {
        let archive = try Archive(url: URL(fileURLWithPath: path), accessMode: .create)
        for (name, bytes) in arrays {
            try archive.addEntry(
                with: name + ".npy", type: .file, uncompressedSize: Int64(bytes.count),
                compressionMethod: compressed ? .deflate : .none
            ) { position, size in Data(bytes[Int(position)..<Int(position) + size]) }
        }
    }

    @Test(".npz: an array by name (file.npz:name), the only array without one, stored or deflated; errors name the fix")
    func npzArchives() throws {
        let dir = temporaryFolder("loom-data")
        let x = npyBytes(descr: "<f4", shape: [2, 3], values: leFloats([1, 2, 3, 4, 5, 6]))
        let y = npyBytes(descr: "<i8", shape: [2], values: le([Int64(1), 0]))
        for compressed in [false, true] {
            let path = dir + "/d\(compressed).npz"
            try npz(path, [("x_train", x), ("y_train", y)], compressed: compressed)
            let a = try readArray(path: path + ":x_train")
            #expect(a.shape == [2, 3] && a.values == .floats([1, 2, 3, 4, 5, 6]))
            let set = try loadIDX(images: path + ":x_train", labels: path + ":y_train", name: "t")
            #expect(set.count == 2 && set.label(0) == 1 && set.features == 3)
            #expect { try readArray(path: path) } throws: {
                "\($0)".contains("holds arrays x_train, y_train; name the one to read as \(path):x_train")
            }
            #expect { try readArray(path: path + ":x_test") } throws: { "\($0)".contains("has no array 'x_test'") }
        }
        try npz(dir + "/one.npz", [("arr_0", y)], compressed: true)
        #expect(try readArray(path: dir + "/one.npz").values == .integers([1, 0]))
        // A truncated member is the .npy reader's error, naming the archive and the member.
        try npz(dir + "/short.npz", [("x", Array(x.prefix(x.count - 4)))], compressed: false)
        #expect { try readArray(path: dir + "/short.npz") } throws: { "\($0)".contains("short.npz:x") }
        write([0x50, 0x4B, 1, 2, 3], dir + "/bad.npz")
        #expect { try readArray(path: dir + "/bad.npz") } throws: { "\($0)".contains("not a readable .npz") }
        #expect { try readArray(path: dir + "/none.npz:x") } throws: { "\($0)".contains("no such file") }
    }
}
