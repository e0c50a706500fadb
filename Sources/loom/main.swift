// loom — the command line: parses arguments, calls LoomEngine, prints. No training logic lives here.
import ArgumentParser
import Foundation
import LoomConfig
import LoomEngine
import LoomNN

@main
struct Loom: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "loom",
        abstract: "A data-parallel neural-network trainer for many-core CPUs.",
        subcommands: [Train.self, Summary.self, Topo.self])
}

/// Options shared by commands that read a config.
struct ConfigOptions: ParsableArguments {
    @Argument(help: "A YAML run config (see configs/).")
    var config: String

    @Option(name: .customLong("set"), help: ArgumentHelp("Override any config key, e.g. --set optimizer.learning_rate=0.01 (repeatable).", valueName: "key.path=value"))
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

struct Train: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Train a model described by a config, then evaluate it on the test set.")

    @OptionGroup var options: ConfigOptions
    // `.unconditional`: "--workers -2" reaches our validation (one clear line) instead of being read as a flag.
    @Option(parsing: .unconditional, help: "Epochs (training.epochs).") var epochs: Int?
    @Option(name: .customLong("batch-size"), parsing: .unconditional, help: "Samples per batch (training.batch_size).") var batchSize: Int?
    @Option(parsing: .unconditional, help: "Seed for initialization, shuffling and dropout (training.seed).") var seed: Int?
    @Option(parsing: .unconditional, help: "Worker threads (training.workers); default: one per usable CPU.") var workers: String?
    @Option(help: "Write a JSON report of the run to this file.") var report: String?

    func run() throws {
        var extra: [String] = []
        if let epochs { extra.append("training.epochs=\(epochs)") }
        if let batchSize { extra.append("training.batch_size=\(batchSize)") }
        if let seed { extra.append("training.seed=\(seed)") }
        if let workers {
            guard workers == "auto" || Int(workers) != nil else { fail(.usage("--workers \(workers): expected a positive integer or auto")) }
            if let n = Int(workers), n < 1 { fail(.usage("--workers \(n): at least one worker is needed")) }
            extra.append("training.workers=\(workers)")
        }
        let config: RunConfig
        let run: TrainingRun
        do {
            config = try options.load(extra: extra)
            run = try TrainingRun(config: config)
        } catch { fail(error) }
        if let report { checkWritable(report) }
        for w in run.warnings { FileHandle.standardError.write(Data((w + "\n").utf8)) }
        print("Training \(run.train.name): \(run.train.count) samples\(run.validation.map { ", validating on \($0.count)" } ?? ""), \(run.placements.count) worker\(run.placements.count == 1 ? "" : "s"), batch \(config.training.batchSize), \(config.optimizer.name)")
        let printer = ProgressPrinter()
        let result = run.run(progress: printer.show)
        print(String(format: "test_loss: %.4f - test_accuracy: %.4f (%d samples)", result.test.loss, result.test.accuracy, result.test.count))
        let perEpoch = result.history.map(\.seconds)
        print(String(format: "trained %d steps in %.2f s (%.0f samples/s, %.3f s/epoch)", result.steps, result.trainSeconds,
                     result.samplesPerSecond, perEpoch.reduce(0, +) / Double(max(1, perEpoch.count))))
        print("weights_digest: \(result.weightsDigest)")
        if let report {
            let json = ReportWriter.json(config: config, run: run, result: result)
            do { try atomicWrite(json, to: report) } catch { fail(.usage("cannot write report \(report): \(error.localizedDescription)")) }
        }
    }
}

struct Summary: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Print the model a config describes, Keras-style.")
    @OptionGroup var options: ConfigOptions
    @Option(help: "Input features, when the config does not state model.input (default: the dataset's).") var input: Int?

    func run() throws {
        let config: RunConfig
        do { config = try options.load() } catch { fail(error) }
        let width = input ?? config.inputWidth ?? defaultInputWidth(config.data.dataset)
        print(config.makeModel(inputWidth: width).summary())
    }

    func defaultInputWidth(_ dataset: String) -> Int {
        switch dataset { case "xor": 2; case "fizzbuzz": 10; default: 784 }
    }
}

struct Topo: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "topology",
                                                    abstract: "Print NUMA nodes, CPUs, memory, and where N workers would run.")
    @Option(help: "Workers to place (default: one per usable CPU).") var workers: Int?
    @Option(help: "Read the topology from a sysfs-like folder (node/nodeN/cpulist …) instead of this machine.") var sysfs: String?

    func run() throws {
        let topology: Topology
        if let sysfs {
            do { topology = try Topology.fromSysfs(root: sysfs) } catch { fail(.topology(error)) }
        } else {
            topology = .detect()
        }
        if let workers, workers < 1 { fail(.usage("--workers \(workers): at least one worker is needed")) }
        print(topology.describe(workers: workers ?? topology.usableCPUs.count))
    }
}

/// Keras-style progress: "Epoch 1/5", then "469/469 ━━━━━━━━━━━━━━━━━━━━ 2s 4ms/step - accuracy: 0.92 - loss: 0.26",
/// redrawn in place on a terminal, one plain line per epoch otherwise.
final class ProgressPrinter {
    let terminal = isatty(STDOUT_FILENO) == 1
    var lastEpoch = 0

    func show(_ p: TrainingProgress) {
        if p.epoch != lastEpoch { print("Epoch \(p.epoch)/\(p.epochs)"); lastEpoch = p.epoch }
        guard terminal || p.record != nil else { return }
        let width = 20
        let filled = p.steps > 0 ? width * p.step / p.steps : width
        let bar = String(repeating: "━", count: filled) + String(repeating: "─", count: width - filled)
        let msPerStep = p.step > 0 ? 1000 * p.elapsed / Double(p.step) : 0
        var line = String(format: "%d/%d %@ %.0fs %.2fms/step - accuracy: %.4f - loss: %.4f", p.step, p.steps, bar,
                          p.elapsed, msPerStep, p.accuracy, p.loss)
        if let r = p.record, let vl = r.valLoss, let va = r.valAccuracy {
            line += String(format: " - val_accuracy: %.4f - val_loss: %.4f", va, vl)
        }
        if terminal {
            print("\r\u{1B}[2K" + line, terminator: p.record != nil ? "\n" : "")
            fflush(nil)
        } else {
            print(line)
        }
    }
}

/// Exits with a clear line if `path`'s folder does not exist (before hours of training, not after).
func checkWritable(_ path: String) {
    let dir = (path as NSString).deletingLastPathComponent
    var isDir: ObjCBool = false
    if !dir.isEmpty && !(FileManager.default.fileExists(atPath: dir, isDirectory: &isDir) && isDir.boolValue) {
        fail(.usage("cannot write \(path): folder \(dir) does not exist"))
    }
}
