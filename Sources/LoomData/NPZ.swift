// NumPy's .npz: a ZIP archive of .npy files (numpy.savez stores them, numpy.savez_compressed deflates them), read
// through ZIPFoundation. A path names one array as `file.npz:name` (the member `name.npy`); without a name the
// archive must hold exactly one array.
import Foundation

#if canImport(ZIPFoundation)  // (the fuzzer compiles Arrays.swift without this file; .npz is then refused)
    import ZIPFoundation

    /// Splits "data.npz:x_train" into the archive's path and the array's name; nil for a path without ".npz".
    func npzReference(_ path: String) -> (archive: String, name: String?)? {
        if path.hasSuffix(".npz") { return (path, nil) }
        guard let range = path.range(of: ".npz:", options: .backwards) else { return nil }
        return (String(path[..<range.upperBound].dropLast()), String(path[range.upperBound...]))
    }

    /// Reads one array of a .npz archive (see the file's comment); `hint` says what to change when it is missing.
    func readNPZ(archive path: String, name: String?, hint: String) throws(DataError) -> NumericArray {
        guard FileManager.default.fileExists(atPath: path) else {
            throw .missingFile(path, hint: hint.isEmpty ? "check the path" : hint)
        }
        if name == nil, let head = FileHandle(forReadingAtPath: path)?.readData(ofLength: 6),
            head.elementsEqual(npyMagic)
        {
            return try parseNPY(readDataFile(path: path, hint: hint), path: path)  // a .npy file named .npz
        }
        let archive: Archive
        do { archive = try Archive(url: URL(fileURLWithPath: path), accessMode: .read) } catch {
            throw .corrupt(path, reason: "not a readable .npz (ZIP) archive (\(error)); write it with numpy.savez")
        }
        let members = archive.filter { $0.type == .file && $0.path.hasSuffix(".npy") }
        let names = members.map { String($0.path.dropLast(4)) }
        let listed = names.isEmpty ? "no arrays" : "arrays " + names.joined(separator: ", ")
        let chosen: Entry
        if let name {
            guard let entry = members.first(where: { $0.path == name + ".npy" }) else {
                throw .mismatch(path, reason: "has no array '\(name)' (it holds \(listed)); name one as \(path):NAME")
            }
            chosen = entry
        } else {
            guard members.count == 1 else {
                throw .mismatch(
                    path, reason: "holds \(listed); name the one to read as \(path):\(names.first ?? "NAME")")
            }
            chosen = members[0]
        }
        var bytes: [UInt8] = []
        bytes.reserveCapacity(Int(clamping: chosen.uncompressedSize))
        do {
            _ = try archive.extract(chosen) { chunk in bytes.append(contentsOf: chunk) }
        } catch {
            throw .corrupt(path, reason: "member \(chosen.path) cannot be read (\(error)); write the file again")
        }
        return try parseNPY(bytes, path: "\(path):\(String(chosen.path.dropLast(4)))")
    }
#endif
