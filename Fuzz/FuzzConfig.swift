// libFuzzer target: the config loader (Yams' YAML parser, then Loom's validation) on arbitrary text.
import LoomConfig

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzConfig(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    let text = String(decoding: UnsafeBufferPointer(start: data, count: size), as: UTF8.self)
    _ = try? ConfigLoader.parse(text, file: "fuzz.yaml")
    return 0
}
