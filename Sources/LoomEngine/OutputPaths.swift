// Output paths are checked before training starts, so that a long run never ends in a write that fails: each
// file's folder (or each output folder) is created when missing, as `mkdir -p` would, and a probe file is
// created and removed in it. If the final weights still cannot be written, they go to a fallback file.
import Foundation

/// Checks and prepares the places a run writes to.
public enum OutputPaths {
    /// Creates the folder of the file `path` when missing and checks that a file can be created there;
    /// `option` names where the path came from (`--report`, `--save-weights`) for the message.
    public static func prepareFile(_ path: String, option: String) throws(LoomError) {
        var isDir: ObjCBool = false
        if FileManager.default.fileExists(atPath: path, isDirectory: &isDir), isDir.boolValue {
            throw .output("\(option) \(path): is a folder; name a file in it, e.g. \(path)/\(example(option))")
        }
        let dir = (path as NSString).deletingLastPathComponent
        try prepareFolder(dir.isEmpty ? "." : dir, option: option, forFile: path)
    }

    /// Creates the folder `dir` when missing and checks that a file can be created in it.
    public static func prepareFolder(_ dir: String, option: String) throws(LoomError) {
        try prepareFolder(dir, option: option, forFile: nil)
    }

    static func prepareFolder(_ dir: String, option: String, forFile file: String?) throws(LoomError) {
        let what = "\(option) \(file ?? dir)"
        var isDir: ObjCBool = false
        if FileManager.default.fileExists(atPath: dir, isDirectory: &isDir), !isDir.boolValue {
            throw .output("\(what): \(dir) is a file, not a folder; choose another path")
        }
        do {
            try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        } catch {
            throw .output("\(what): cannot create the folder \(dir) (\(reason(error))); choose another path")
        }
        let probe = dir + "/.loom-write-probe-\(getpid())"
        let fd = open(probe, O_WRONLY | O_CREAT | O_EXCL, 0o600)
        guard fd >= 0 else {
            let why = String(cString: strerror(errno)).lowercased()
            throw .output("\(what): cannot write in \(dir) (\(why)); choose another path")
        }
        close(fd)
        unlink(probe)
    }

    /// Where the final weights go when `path` cannot be written: the working folder, else the temporary one.
    public static func fallbacks(for path: String) -> [String] {
        let name = "loom-weights-\(getpid())-" + (path as NSString).lastPathComponent
        return [FileManager.default.currentDirectoryPath + "/" + name, NSTemporaryDirectory() + name]
    }

    static func example(_ option: String) -> String {
        switch option {
        case "--report": "report.json"
        case "--save-weights": "weights.safetensors"
        default: "out"
        }
    }

    static func reason(_ error: Error) -> String {
        ((error as NSError).userInfo[NSUnderlyingErrorKey] as? NSError)?.localizedDescription
            ?? error.localizedDescription
    }
}
