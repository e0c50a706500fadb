// Scratch folders for the tests: made under the system's temporary directory and removed when the test process
// exits, so that running the tests leaves nothing behind in /tmp.
import Foundation
import Synchronization

/// The folders `temporaryFolder(_:)` made, removed at exit.
private let madeFolders = Mutex<[String]>([])

/// A new, empty folder `<tmp>/<prefix>-<UUID>`, removed with everything in it when the test process exits.
public func temporaryFolder(_ prefix: String) -> String {
    let path = NSTemporaryDirectory() + "\(prefix)-\(UUID().uuidString)"
    try! FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
    madeFolders.withLock { folders in
        if folders.isEmpty { atexit { removeMadeFolders() } }
        folders.append(path)
    }
    return path
}

/// Removes every folder `temporaryFolder(_:)` made.
private func removeMadeFolders() {
    for path in madeFolders.withLock({ $0 }) { try? FileManager.default.removeItem(atPath: path) }
}
