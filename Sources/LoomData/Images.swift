// Single images for prediction: PGM (P5 binary or P2 text, any maxval) and PNG (decoded by libpng, any
// colour type, converted to 8-bit grey), and the images of an IDX file. Pixels become floats in [0, 1] like the
// training data; MNIST's digits are light on dark, so a dark-on-light image must be inverted first.
import CPng
import Foundation

/// A grey image, row-major, values in [0, 1].
public struct GreyImage: Sendable {
    /// Pixels per row.
    public var width: Int
    /// Rows.
    public var height: Int
    /// Grey levels in [0, 1], row-major.
    public var pixels: [Float]
}

/// Reads a PGM or PNG file (chosen by content, not name).
public func readImage(path: String) throws(DataError) -> GreyImage {
    guard let data = FileManager.default.contents(atPath: path) else {
        throw FileManager.default.fileExists(atPath: path)
            ? .unreadable(path, reason: "permission denied or not a file")
            : .missingFile(path, hint: "")
    }
    let bytes = [UInt8](data)
    if bytes.count >= 8 && bytes[0..<8] == [0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A] {
        return try readPNG(path)
    }
    if bytes.count >= 2 && bytes[0] == UInt8(ascii: "P")
        && (bytes[1] == UInt8(ascii: "5") || bytes[1] == UInt8(ascii: "2"))
    {
        return try parsePGM(bytes, path: path)
    }
    throw .corrupt(path, reason: "not a PGM (P5/P2) or PNG image")
}

/// PGM: "P5"/"P2", width, height, maxval (whitespace and # comments between), then the pixels.
func parsePGM(_ b: [UInt8], path: String) throws(DataError) -> GreyImage {
    var i = 2
    func token() throws(DataError) -> Int {
        while i < b.count {
            if b[i] == UInt8(ascii: "#") {
                while i < b.count && b[i] != 10 { i += 1 }
            } else if b[i] == 32 || (9...13).contains(b[i]) {
                i += 1
            } else {
                break
            }
        }
        var v = 0
        var digits = 0
        while i < b.count, (48...57).contains(b[i]) {
            v = v * 10 + Int(b[i] - 48)
            i += 1
            digits += 1
            if v > 1 << 20 { break }
        }
        guard digits > 0 else { throw .corrupt(path, reason: "bad PGM header") }
        return v
    }
    let binary = b[1] == UInt8(ascii: "5")
    let w = try token()
    let h = try token()
    let maxval = try token()
    guard w > 0, h > 0, w * h <= 1 << 24, (1...65535).contains(maxval) else {
        throw .corrupt(path, reason: "PGM size \(w)×\(h) or maxval \(maxval) out of range")
    }
    var pixels = [Float](repeating: 0, count: w * h)
    if binary {
        i += 1  // the single whitespace after maxval
        let size = maxval > 255 ? 2 : 1
        guard b.count >= i + w * h * size else { throw .truncated(path, expected: i + w * h * size, found: b.count) }
        for p in 0..<w * h {
            let v = size == 1 ? Int(b[i + p]) : Int(b[i + 2 * p]) << 8 | Int(b[i + 2 * p + 1])
            pixels[p] = Float(min(v, maxval)) / Float(maxval)
        }
    } else {
        for p in 0..<w * h { pixels[p] = Float(min(try token(), maxval)) / Float(maxval) }
    }
    return GreyImage(width: w, height: h, pixels: pixels)
}

/// PNG through libpng's simplified API, converted to 8-bit grey.
func readPNG(_ path: String) throws(DataError) -> GreyImage {
    var image = png_image()
    image.version = UInt32(PNG_IMAGE_VERSION)
    guard png_image_begin_read_from_file(&image, path) != 0 else {
        let message = withUnsafeBytes(of: image.message) { String(decoding: $0.prefix { $0 != 0 }, as: UTF8.self) }
        throw .corrupt(path, reason: "libpng: \(message)")
    }
    image.format = UInt32(PNG_FORMAT_GRAY)
    let w = Int(image.width)
    let h = Int(image.height)
    guard w > 0, h > 0, w * h <= 1 << 24 else {
        png_image_free(&image)
        throw .corrupt(path, reason: "PNG size \(w)×\(h) out of range")
    }
    var buffer = [UInt8](repeating: 0, count: w * h)
    let ok = buffer.withUnsafeMutableBytes { png_image_finish_read(&image, nil, $0.baseAddress, Int32(w), nil) }
    guard ok != 0 else {
        let message = withUnsafeBytes(of: image.message) { String(decoding: $0.prefix { $0 != 0 }, as: UTF8.self) }
        png_image_free(&image)
        throw .corrupt(path, reason: "libpng: \(message)")
    }
    return GreyImage(width: w, height: h, pixels: buffer.map { Float($0) / 255 })
}

/// Writes an 8-bit grey PNG (tests and examples).
public func writePNG(_ path: String, width: Int, height: Int, pixels: [UInt8]) -> Bool {
    var image = png_image()
    image.version = UInt32(PNG_IMAGE_VERSION)
    image.width = UInt32(width)
    image.height = UInt32(height)
    image.format = UInt32(PNG_FORMAT_GRAY)
    return pixels.withUnsafeBytes { png_image_write_to_file(&image, path, 0, $0.baseAddress, Int32(width), nil) != 0 }
}
