// What kind of file a path holds, from its first bytes (and its name for YAML), so that a file given to the
// wrong command is named as what it is instead of failing with a parser's complaint.
import Foundation

/// The kinds of file Loom reads.
public enum FileKind: String, Sendable {
    /// A YAML config file.
    case yamlConfig = "a YAML config"
    /// A safetensors weights file.
    case safetensors = "a safetensors weights file"
    /// An IDX data file.
    case idx = "an IDX data file"
    /// A gzip-compressed file.
    case gzip = "a gzip file"
    /// A PNG image.
    case png = "a PNG image"
    /// A PGM image.
    case pgm = "a PGM image"
    /// Another text file.
    case text = "a text file"
    /// Another binary file.
    case other = "a binary file"

    /// The kind of the file at `path`, or nil when it cannot be read.
    public static func of(_ path: String) -> FileKind? {
        guard let handle = FileHandle(forReadingAtPath: path) else { return nil }
        defer { try? handle.close() }
        let head = [UInt8]((try? handle.read(upToCount: 512)) ?? Data())
        return of(head: head, name: path)
    }

    /// The kind of a file that starts with `head`, named `name`.
    public static func of(head: [UInt8], name: String) -> FileKind {
        if head.count >= 9 && head[8] == UInt8(ascii: "{") && head[4..<8].allSatisfy({ $0 == 0 }) {
            return .safetensors
        }
        if head.count >= 2 && head[0] == 0x1F && head[1] == 0x8B { return .gzip }
        if head.count >= 4 && head[0] == 0x89 && head[1] == 0x50 && head[2] == 0x4E && head[3] == 0x47 { return .png }
        if head.count >= 2 && head[0] == UInt8(ascii: "P")
            && (head[1] == UInt8(ascii: "5") || head[1] == UInt8(ascii: "2"))
        {
            return .pgm
        }
        if head.count >= 4 && head[0] == 0 && head[1] == 0 && (0x08...0x0E).contains(head[2]) { return .idx }
        let isText = !head.contains(0)
        let ext = (name as NSString).pathExtension.lowercased()
        if ext == "yaml" || ext == "yml" { return isText ? .yamlConfig : .other }
        return isText ? .text : .other
    }
}
