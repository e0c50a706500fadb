// loom — the command line: parses arguments, calls the same public API a Swift program would (LoomEngine),
// prints. No training logic lives here. This file: the root command, its error handling, shared options.
import ArgumentParser
import Foundation
import Loom

@main
struct Loom: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "loom",
        abstract: "A data-parallel neural-network trainer for many-core CPUs.",
        version: Version.loom,
        subcommands: [
            Train.self, Evaluate.self, Predict.self, Summary.self, Plan.self, Tune.self, Topo.self, BenchCommand.self,
        ])

    /// Runs the command; every error is one `error:` line on stderr. Command-line mistakes exit with 2 like
    /// Loom's own configuration errors (ArgumentParser's default would be 64); --help and --version exit 0.
    static func main() {
        ProcessSetup.lineBufferOutput()
        do {
            var command = try parseAsRoot()
            try command.run()
        } catch {
            if exitCode(for: error) == .success {
                print(fullMessage(for: error))
                Foundation.exit(0)
            }
            let message = self.message(for: error).split(separator: "\n").joined(separator: " ")
            let words = CommandLine.arguments.dropFirst().prefix { !$0.hasPrefix("-") }
            let command = (["loom"] + words.prefix(2).filter(isSubcommand)).joined(separator: " ")
            fail(.usage(lowercasedFirst(message) + " (see '\(command) --help')"))
        }
    }

    static func isSubcommand(_ word: String) -> Bool {
        ["train", "evaluate", "predict", "summary", "plan", "tune", "topology", "bench", "kernels", "step", "scaling"]
            .contains(
                word)
    }

    static func lowercasedFirst(_ s: String) -> String {
        guard let first = s.first, first.isUppercase, !(s.dropFirst().first?.isUppercase ?? false) else { return s }
        return first.lowercased() + s.dropFirst()
    }
}

/// Options shared by commands that read a config.
struct ConfigOptions: ParsableArguments {
    @Argument(help: "A YAML run config (see configs/).")
    var config: String

    @Option(
        name: .customLong("set"),
        help: ArgumentHelp(
            "Override any config key, e.g. --set optimizer.learning_rate=0.01 (repeatable).",
            valueName: "key.path=value"))
    var overrides: [String] = []

    func load(extra: [String] = []) throws(LoomError) -> RunConfig {
        do { return try ConfigLoader.load(path: config, overrides: overrides + extra) } catch { throw .config(error) }
    }
}

/// Prints a user error as one line and exits with its code (no stack trace, nothing half-written).
func fail(_ error: LoomError) -> Never {
    FileHandle.standardError.write(Data("error: \(error)\n".utf8))
    Foundation.exit(error.exitCode)
}

/// Like `fail`, for a run of several ranks that all meet the same error: rank 0 prints it, every rank exits with
/// its code. (An error only one rank meets is printed by that rank, which then ends the job: `Communicator.abort`.)
func failRank(_ world: Communicator, _ error: LoomError) -> Never {
    guard world.isDistributed else { fail(error) }
    if world.rank == 0 { FileHandle.standardError.write(Data("error: \(error)\n".utf8)) }
    world.finalize()
    Foundation.exit(error.exitCode)
}

/// Creates `path`'s folder when missing and exits with a clear line if the file cannot be written there
/// (before hours of work, not after).
func checkWritable(_ path: String, option: String) {
    do { try OutputPaths.prepareFile(path, option: option) } catch { fail(error) }
}

func writeOrFail(_ text: String, _ path: String) {
    do { try atomicWrite(text, to: path) } catch {
        fail(.output("cannot write \(path): \(error.localizedDescription)"))
    }
}

func padded(_ s: String, _ width: Int) -> String {
    s.count >= width ? s + " " : s + String(repeating: " ", count: width - s.count)
}

/// Which kernel build runs, and why: "AVX-512 (16-wide vectors; the CPU has AVX-512)".
func kernelsLine() -> String { ProcessSetup.kernelsDescription }
