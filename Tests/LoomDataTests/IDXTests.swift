import Foundation
import LoomTestSupport
import Testing

@testable import LoomData

/// Writes an IDX file of unsigned bytes: magic 0 0 8 ndims, big-endian dimensions, data.
func idxBytes(_ dims: [Int], _ data: [UInt8], magicType: UInt8 = 0x08) -> [UInt8] {
    var out: [UInt8] = [0, 0, magicType, UInt8(dims.count)]
    for d in dims { out += [UInt8(d >> 24 & 255), UInt8(d >> 16 & 255), UInt8(d >> 8 & 255), UInt8(d & 255)] }
    return out + data
}

func write(_ bytes: [UInt8], _ path: String, gzip: Bool = false) {
    _ = FileManager.default.createFile(atPath: path, contents: Data(bytes))
    if gzip {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: "/bin/gzip")
        p.arguments = ["-f", path]
        try! p.run()
        p.waitUntilExit()
    }
}

@Suite("IDX reader and datasets")
struct IDXTests {
    @Test("raw and gzip files, images and labels, pixels scaled to [0, 1]", arguments: [false, true])
    func readsPairs(gzip: Bool) throws {
        let dir = temporaryFolder("loom-data")
        let pixels: [UInt8] = (0..<3 * 2 * 2).map { UInt8($0 * 20) }
        write(idxBytes([3, 2, 2], pixels), dir + "/images", gzip: gzip)
        write(idxBytes([3], [7, 0, 9], magicType: 0x08), dir + "/labels", gzip: gzip)
        let suffix = gzip ? ".gz" : ""
        let d = try loadIDX(images: dir + "/images" + suffix, labels: dir + "/labels" + suffix, name: "t")
        #expect(d.count == 3 && d.features == 4 && d.classes == 10)
        var rows = [Float](repeating: -1, count: 12)
        var labels = [Int32](repeating: -1, count: 3)
        let order: [Int32] = [2, 0, 1]
        rows.withUnsafeMutableBufferPointer { r in
            labels.withUnsafeMutableBufferPointer { l in
                d.gather(order, count: 3, into: r.baseAddress!, ld: 4, labels: l.baseAddress!)
            }
        }
        #expect(labels == [9, 7, 0])
        #expect(abs(rows[0] - 160 / 255) < 1e-7 && rows[4] == 0 && abs(rows[11] - 140 / 255) < 1e-7)
    }

    @Test("a wrong magic number is named")
    func badMagic() {
        let dir = temporaryFolder("loom-data")
        write([0, 0, 0x0A, 1, 0, 0, 0, 1, 0], dir + "/type0a")  // 0x0A is no IDX type
        #expect(throws: DataError.badMagic(dir + "/type0a", found: "0x00000a01")) { try readIDX(path: dir + "/type0a") }
        write(Array("hello world!".utf8), dir + "/text")
        #expect(throws: DataError.self) { try readIDX(path: dir + "/text") }
    }

    @Test("a truncated file says how many bytes the header promised", arguments: [false, true])
    func truncated(gzip: Bool) {
        let dir = temporaryFolder("loom-data")
        write(
            Array(idxBytes([10, 28, 28], [UInt8](repeating: 1, count: 7840)).prefix(5000)), dir + "/images", gzip: gzip)
        let path = dir + "/images" + (gzip ? ".gz" : "")
        #expect(throws: DataError.truncated(path, expected: 16 + 7840, found: 5000)) { try readIDX(path: path) }
    }

    @Test("a truncated gzip stream")
    func truncatedGzip() throws {
        let dir = temporaryFolder("loom-data")
        write(idxBytes([100, 28, 28], (0..<78400).map { UInt8($0 % 251) }), dir + "/images", gzip: true)
        let full = try Data(contentsOf: URL(fileURLWithPath: dir + "/images.gz"))
        _ = FileManager.default.createFile(atPath: dir + "/cut.gz", contents: full.prefix(full.count / 2))
        #expect {
            try readIDX(path: dir + "/cut.gz")
        } throws: { error in
            "\(error)".contains("cut.gz") && "\(error)".contains("gzip")
        }
    }

    @Test("image and label counts that disagree")
    func countMismatch() {
        let dir = temporaryFolder("loom-data")
        write(idxBytes([3, 2, 2], [UInt8](repeating: 0, count: 12)), dir + "/images")
        write(idxBytes([4], [1, 2, 3, 4]), dir + "/labels")
        #expect {
            try loadIDX(images: dir + "/images", labels: dir + "/labels", name: "t")
        } throws: { error in
            "\(error)" == "\(dir)/labels: holds 4 labels but \(dir)/images holds 3 samples"
        }
    }

    @Test("a missing file says where it looked and what to do")
    func missing() {
        #expect {
            try loadDataset(DataSource(dataset: "mnist", path: "/nonexistent/mnist"))
        } throws: { error in
            "\(error)".hasPrefix("/nonexistent/mnist/train-images-idx3-ubyte.gz: no such file; ")
                && "\(error)".contains("set data.path")
        }
    }

    @Test("the shipped MNIST: 60,000 + 10,000 images of 784 pixels, labels 0-9")
    func mnist() throws {
        let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .deletingLastPathComponent().path
        let d = try loadDataset(DataSource(dataset: "mnist", path: root + "/data/mnist"))
        #expect(d.train.count == 60000 && d.test.count == 10000 && d.train.features == 784 && d.train.classes == 10)
        #expect(d.train.label(0) == 5 && d.test.label(0) == 7)
        #expect(d.train.memoryBytes < 50_000_000)
    }

    @Test("FizzBuzz and XOR as Data Science from Scratch sets them up")
    func small() {
        let fb = fizzBuzz()
        #expect(fb.train.count == 923 && fb.test.count == 100 && fb.train.features == 10)
        #expect(fb.test.label(14) == 3 && fb.test.label(2) == 1 && fb.test.label(4) == 2 && fb.test.label(0) == 0)
        let x = xor()
        #expect((0..<4).map { x.train.label($0) } == [0, 1, 1, 0])
    }

    @Test("validation split shares storage and takes the last fraction")
    func subset() {
        let d = fizzBuzz().train
        let v = d.subset(900..<923)
        #expect(v.count == 23 && v.label(0) == d.label(900))
    }
}

@Suite("Fuzzer regressions")
struct FuzzRegressions {
    @Test("dimensions whose product overflows (Fuzz/artifacts crash-041988b1…) are an error, not a trap")
    func overflowingDimensions() {
        let bytes: [UInt8] = [0, 0, 8, 3, 0xbf, 0, 0, 0, 0xfc, 0xff, 0, 0, 0x08, 0x80, 0, 0, 0, 0x7e]
        #expect { try parseIDX(bytes, path: "crash") } throws: { "\($0)".contains("implausibly large") }
    }
}
