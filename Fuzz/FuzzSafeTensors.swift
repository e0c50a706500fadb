// libFuzzer target: the safetensors reader (header length, JSON, dtypes, shapes, offsets) on arbitrary bytes.
import Foundation

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzSafeTensors(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    _ = try? SafeTensors.decode(Data(bytes: data, count: size), path: "fuzz")
    return 0
}
