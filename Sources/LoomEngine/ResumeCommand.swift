// The command a user runs to continue an interrupted run: the same command line, with every override that
// shapes the run kept, and the checkpoint in place of whatever the run started from.
import Foundation

/// Builds the resume command printed after an interrupted or step-limited run.
public enum ResumeCommand {
    /// Options the resumed run must not repeat: the old starting point, and the step limit that ended the run
    /// (`--max-steps` counts from the start of training, so repeating it would stop the resumed run at once).
    static let dropped = ["--resume", "--init-weights", "--max-steps"]

    /// `arguments` as `CommandLine.arguments` gives them (program name first); the result starts with `loom`,
    /// keeps every other argument in order (shell-quoted where needed) and ends with `--resume checkpoint`.
    public static func make(arguments: [String], checkpoint: String) -> String {
        var kept: [String] = []
        var words = arguments.dropFirst()[...]
        while let word = words.popFirst() {
            if dropped.contains(word) {
                _ = words.popFirst()  // its value
                continue
            }
            if dropped.contains(where: { word.hasPrefix($0 + "=") }) { continue }
            kept.append(word)
        }
        return (["loom"] + kept + ["--resume", checkpoint]).map(shellQuoted).joined(separator: " ")
    }

    /// The word as a POSIX shell reads it back: bare when safe, else in single quotes.
    public static func shellQuoted(_ word: String) -> String {
        let safe = CharacterSet.alphanumerics.union(CharacterSet(charactersIn: "-_./=,:+@%"))
        if !word.isEmpty && word.unicodeScalars.allSatisfy({ safe.contains($0) }) { return word }
        return "'" + word.replacingOccurrences(of: "'", with: "'\\''") + "'"
    }
}
