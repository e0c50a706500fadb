// libFuzzer target: the data readers — IDX of every type, NumPy .npy and CSV (gzip detection, zlib inflation,
// header parsing, length validation, value conversion, quoting) — on arbitrary bytes. Built by Fuzz/run with the reader's own source file; any crash or sanitizer report is a bug.
import Foundation

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzIDX(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    var bytes = Array(UnsafeBufferPointer(start: data, count: size))
    if bytes.count >= 2 && bytes[0] == 0x1f && bytes[1] == 0x8b {
        guard let inflated = try? gunzip(bytes, path: "fuzz") else { return 0 }
        bytes = inflated
    }
    _ = bytes.withUnsafeBufferPointer { try? parseCSV($0, path: "fuzz", options: CSVOptions()) }
    if bytes.starts(with: npyMagic) {
        _ = try? parseNPY(bytes, path: "fuzz")
    } else if let idx = try? parseIDX(bytes, path: "fuzz") {
        _ = try? NumericArray(idx: idx, path: "fuzz")
    }
    return 0
}
