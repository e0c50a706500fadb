// loom — the command line: parses arguments, calls LoomEngine, prints. No training logic lives here.
import ArgumentParser
import CSupport
import Foundation
import LoomConfig
import LoomData
import LoomEngine
import LoomKernels
import LoomNN

@main
struct Loom: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "loom",
        abstract: "A data-parallel neural-network trainer for many-core CPUs.",
        subcommands: [Train.self, Evaluate.self, Predict.self, Summary.self, Topo.self, BenchCommand.self])
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

struct Train: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Train a model described by a config, then evaluate it on the test set.")

    @OptionGroup var options: ConfigOptions
    // `.unconditional`: "--workers -2" reaches our validation (one clear line) instead of being read as a flag.
    @Option(parsing: .unconditional, help: "Epochs (training.epochs).") var epochs: Int?
    @Option(name: .customLong("batch-size"), parsing: .unconditional, help: "Samples per batch (training.batch_size).")
    var batchSize: Int?
    @Option(parsing: .unconditional, help: "Seed for initialization, shuffling and dropout (training.seed).") var seed:
        Int?
    @Option(parsing: .unconditional, help: "Worker threads (training.workers); default: one per usable CPU.")
    var workers: String?
    @Option(help: "Write a JSON report of the run to this file.") var report: String?
    @Option(name: .customLong("save-weights"), help: "Write the final weights (safetensors) to this file.")
    var saveWeights: String?
    @Option(
        name: .customLong("init-weights"), help: "Start from these weights (safetensors) instead of the initializers.")
    var initWeights: String?
    @Option(help: "Continue the run saved in this checkpoint (any worker count gives the same result).") var resume:
        String?
    @Option(
        name: .customLong("max-steps"), parsing: .unconditional,
        help: "End the run after this many optimizer steps (counting from the start of training).") var maxSteps: Int?
    @Option(name: .customLong("log-dir"), help: "Write metrics.csv, metrics.jsonl, config.yaml and metrics.svg here.")
    var logDir: String?

    func run() throws {
        var extra: [String] = []
        if let epochs { extra.append("training.epochs=\(epochs)") }
        if let batchSize { extra.append("training.batch_size=\(batchSize)") }
        if let seed { extra.append("training.seed=\(seed)") }
        if let workers {
            guard workers == "auto" || Int(workers) != nil else {
                fail(.usage("--workers \(workers): expected a positive integer or auto"))
            }
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
        if let saveWeights { checkWritable(saveWeights) }
        if let maxSteps, maxSteps < 1 { fail(.usage("--max-steps \(maxSteps): at least one step is needed")) }
        var runOptions = RunOptions()
        runOptions.initWeights = initWeights
        runOptions.resume = resume
        runOptions.maxSteps = maxSteps
        runOptions.saveWeights = saveWeights
        runOptions.logDir = logDir
        runOptions.stopOnSignal = true
        // The same command line, resuming: drop any earlier --resume, add the checkpoint.
        var words = ["loom"] + CommandLine.arguments.dropFirst()
        if let i = words.firstIndex(of: "--resume"), i + 1 < words.count { words.removeSubrange(i...i + 1) }
        words.removeAll { $0.hasPrefix("--resume=") }
        let command = words.joined(separator: " ")
        runOptions.resumeCommand = { "\(command) --resume \($0)" }
        loom_install_signal_handlers()
        for w in run.warnings { FileHandle.standardError.write(Data((w + "\n").utf8)) }
        print(
            "Training \(run.train.name): \(run.train.count) samples\(run.validation.map { ", validating on \($0.count)" } ?? ""), \(run.placements.count) worker\(run.placements.count == 1 ? "" : "s"), batch \(config.training.batchSize), \(config.optimizer.name)"
        )
        let printer = ProgressPrinter()
        let result: RunResult
        do { result = try run.run(runOptions, progress: printer.show) } catch { fail(error) }
        if let test = result.test {
            print(
                String(
                    format: "test_loss: %.4f - test_accuracy: %.4f (%d samples)", test.loss, test.accuracy, test.count))
        }
        if let stopped = result.stoppedAtStep {
            print(
                "stopped after step \(stopped) (--max-steps)"
                    + (result.lastCheckpoint.map {
                        "; resume with: loom train \(options.config) --resume \($0)"
                    } ?? "; set checkpoint.dir to be able to resume"))
        } else if let checkpoint = result.lastCheckpoint {
            print("last checkpoint: \(checkpoint)")
        }
        let perEpoch = result.history.map(\.seconds)
        print(
            String(
                format: "trained %d steps in %.2f s (%.0f samples/s, %.3f s/epoch)", result.steps, result.trainSeconds,
                result.samplesPerSecond, perEpoch.reduce(0, +) / Double(max(1, perEpoch.count))))
        print("weights_digest: \(result.weightsDigest)")
        if let report {
            let json = ReportWriter.json(config: config, run: run, result: result)
            do { try atomicWrite(json, to: report) } catch {
                fail(.usage("cannot write report \(report): \(error.localizedDescription)"))
            }
        }
    }
}

struct Summary: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Print the model a config describes, Keras-style.")
    @OptionGroup var options: ConfigOptions
    @Option(help: "Input features, when the config does not state model.input (default: the dataset's).") var input:
        Int?

    func run() throws {
        let config: RunConfig
        do { config = try options.load() } catch { fail(error) }
        let width = input ?? config.inputWidth ?? defaultInputWidth(config.data.dataset)
        print(config.makeModel(inputWidth: width).summary())
    }

    func defaultInputWidth(_ dataset: String) -> Int {
        switch dataset {
        case "xor": 2
        case "fizzbuzz": 10
        default: 784
        }
    }
}

struct Topo: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "topology",
        abstract: "Print NUMA nodes, CPUs, memory, and where N workers would run.")
    @Option(help: "Workers to place (default: one per usable CPU).") var workers: Int?
    @Option(help: "Read the topology from a sysfs-like folder (node/nodeN/cpulist …) instead of this machine.")
    var sysfs: String?

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
        if p.epoch != lastEpoch {
            print("Epoch \(p.epoch)/\(p.epochs)")
            lastEpoch = p.epoch
        }
        guard terminal || p.record != nil else { return }
        let width = 20
        let filled = p.steps > 0 ? width * p.step / p.steps : width
        let bar = String(repeating: "━", count: filled) + String(repeating: "─", count: width - filled)
        let msPerStep = p.step > 0 ? 1000 * p.elapsed / Double(p.step) : 0
        var line = String(
            format: "%d/%d %@ %.0fs %.2fms/step - accuracy: %.4f - loss: %.4f", p.step, p.steps, bar,
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

struct BenchCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "bench", abstract: "Measure kernel speed and scaling.",
        subcommands: [KernelsBench.self, StepBench.self, ScalingBench.self])
}

struct KernelsBench: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "kernels",
        abstract: "GFLOP/s of each GEMM shape of the reference model, one worker and all, against the core's FMA peak.")
    @Option(parsing: .unconditional, help: "Workers for the all-workers column (default: one per usable CPU).")
    var workers: Int?
    @Option(help: "Write the results as JSON to this file.") var json: String?

    func run() throws {
        let topology = Topology.detect()
        let n = workers ?? topology.usableCPUs.count
        guard n >= 1 else { fail(.usage("--workers \(n): at least one worker is needed")) }
        if let json { checkWritable(json) }
        let (peak, results) = Bench.kernels(workers: n, placements: topology.placement(workers: n))
        print(String(format: "fp32 FMA peak of one core (measured): %.1f GFLOP/s (%d-wide vectors)", peak, vecLanes))
        print(padded("shape", 34) + padded("M×N×K", 13) + "1 worker GFLOP/s  % of peak  \(n) workers GFLOP/s")
        for r in results {
            print(
                padded(r.name, 34) + padded("\(r.m)×\(r.n)×\(r.k)", 13)
                    + String(format: "%16.1f  %8.1f%%  %17.1f", r.gflopsSingle, r.percentOfPeak, r.gflopsAll))
        }
        if let json { writeOrFail(Bench.json(results), json) }
    }
}

struct StepBench: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "step",
        abstract: "One worker's training step beside its first layer's GEMM alone, interleaved in one sitting.")
    @OptionGroup var options: ConfigOptions
    @Option(parsing: .unconditional, help: "Steps per timing (three timings a round).") var steps: Int = 20
    @Option(parsing: .unconditional, help: "Interleaved rounds; the step and the GEMM each keep their best.")
    var rounds: Int = 15
    @Option(help: "Also write the result as JSON to this file.") var json: String?

    func run() throws {
        guard steps >= 1 else { fail(.usage("--steps \(steps): at least one step is needed")) }
        guard rounds >= 1 else { fail(.usage("--rounds \(rounds): at least one round is needed")) }
        if let json { checkWritable(json) }
        let run: TrainingRun
        do { run = try TrainingRun(config: try options.load(extra: ["training.workers=1"])) } catch { fail(error) }
        let r = Bench.step(run, steps: steps, rounds: rounds, placement: Topology.detect().placement(workers: 1)[0])
        print(
            String(
                format: "training step, 1 worker:  %.3f ms  %.1f GFLOP/s  (%.1f MFLOP a step)", r.millisecondsPerStep,
                r.stepGflops, r.flopsPerStep / 1e6))
        print(String(format: "GEMM %@ alone:  %.1f GFLOP/s", r.gemmName, r.gemmGflops))
        print(
            String(
                format: "the step runs at %.1f%% of the GEMM rate (best of %d interleaved rounds)", 100 * r.ratio,
                rounds))
        if let json { writeOrFail(Bench.json([r]), json) }
    }
}

struct ScalingBench: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "scaling",
        abstract: "Train K steps at each worker count; print and save the speed-up table and chart.")
    @OptionGroup var options: ConfigOptions
    @Option(help: "Worker counts, comma-separated (default: 1, 2, 4, … up to the usable CPUs).") var workers: String?
    @Option(parsing: .unconditional, help: "Timed steps per worker count.") var steps: Int = 200
    @Option(parsing: .unconditional, help: "Interleaved rounds; each worker count keeps its best.") var repeats: Int = 3
    @Option(help: "Folder for scaling.csv, scaling.json and scaling.svg.") var out: String = "bench-results"
    @Option(help: "Also write the results as JSON to this file.") var json: String?

    func run() throws {
        let topology = Topology.detect()
        var counts: [Int] = []
        if let workers {
            for part in workers.split(separator: ",") {
                guard let n = Int(part.trimmingCharacters(in: .whitespaces)), n >= 1 else {
                    fail(
                        .usage("--workers \(workers): expected positive worker counts separated by commas, e.g. 1,2,4"))
                }
                counts.append(n)
            }
        } else {
            var n = 1
            while n < topology.usableCPUs.count {
                counts.append(n)
                n *= 2
            }
            counts.append(topology.usableCPUs.count)
        }
        guard steps >= 1 else { fail(.usage("--steps \(steps): at least one step is needed")) }
        let run: TrainingRun
        do { run = try TrainingRun(config: try options.load(extra: ["training.workers=1"])) } catch { fail(error) }
        if let bad = counts.first(where: { $0 > run.config.training.batchSize }) {
            fail(.usage("--workers \(bad) is more than the batch size \(run.config.training.batchSize)"))
        }
        do { try FileManager.default.createDirectory(atPath: out, withIntermediateDirectories: true) } catch {
            fail(.usage("cannot create \(out): \(error.localizedDescription)"))
        }
        guard repeats >= 1 else { fail(.usage("--repeats \(repeats): at least one round is needed")) }
        let rows = Bench.scaling(run, workers: counts, steps: steps, repeats: repeats, topology: topology)
        print("workers  samples/s  speed-up  efficiency  s/epoch (projected)  peak RSS")
        for r in rows {
            print(
                String(
                    format: "%7d  %9.0f  %7.2f×  %10.2f  %19.3f  %6.0f MB", r.workers, r.samplesPerSecond, r.speedup,
                    r.efficiency, r.secondsPerEpoch, r.peakRSSMB))
        }
        let title =
            "\(run.train.name), batch \(run.config.training.batchSize): speed-up over \(counts[0]) worker\(counts[0] == 1 ? "" : "s") (best of \(repeats) × \(steps) steps)"
        writeOrFail(Bench.csv(rows), out + "/scaling.csv")
        writeOrFail(Bench.json(rows), out + "/scaling.json")
        writeOrFail(Bench.svg(rows, title: title), out + "/scaling.svg")
        if let json { writeOrFail(Bench.json(rows), json) }
        print("wrote \(out)/scaling.csv, \(out)/scaling.json, \(out)/scaling.svg")
    }
}

func writeOrFail(_ text: String, _ path: String) {
    do { try atomicWrite(text, to: path) } catch { fail(.usage("cannot write \(path): \(error.localizedDescription)")) }
}

func padded(_ s: String, _ width: Int) -> String {
    s.count >= width ? s + " " : s + String(repeating: " ", count: width - s.count)
}

struct Evaluate: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Loss, accuracy and confusion matrix of saved weights on a test set.")
    @Argument(help: "A weights file (loom train --save-weights) or checkpoint.") var weights: String
    @Option(help: "Dataset to evaluate on (mnist, fashion-mnist, …; default: the one it was trained on).") var data:
        String?
    @Option(name: .customLong("data-path"), help: "Folder of the dataset's IDX files.") var dataPath: String?
    @Option(parsing: .unconditional, help: "Worker threads (default: one per usable CPU).") var workers: Int?

    func run() throws {
        if let workers, workers < 1 { fail(.usage("--workers \(workers): at least one worker is needed")) }
        do { try evaluate() } catch { fail(error) }
    }

    func evaluate() throws(LoomError) {
        do {
            let saved = try SavedModel(path: weights)
            var source: DataSource? = nil
            if data != nil || dataPath != nil {
                source = DataSource(dataset: data ?? saved.config.data.dataset, path: dataPath)
            }
            let (e, set) = try saved.evaluate(data: source, workers: workers)
            print(
                String(
                    format: "%@ on %@ test set (%d samples): loss %.4f - accuracy %.4f", weights, set.name, e.count,
                    e.loss, e.accuracy))
            print("confusion matrix (rows: true class, columns: predicted):")
            let width = max(5, String(e.count).count + 1)
            print(
                padded("", 6)
                    + e.confusion.indices.map { String(repeating: " ", count: width - String($0).count) + String($0) }
                    .joined())
            for (t, row) in e.confusion.enumerated() {
                print(
                    padded("  \(t)", 6)
                        + row.map { String(repeating: " ", count: max(0, width - String($0).count)) + String($0) }
                        .joined())
            }
        }
    }
}

struct Predict: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Top classes with probabilities for images: IDX image files, PGM or PNG of the model's input size.")
    @Argument(help: "A weights file (loom train --save-weights) or checkpoint.") var weights: String
    @Argument(help: "IDX image files, PGM or PNG images (light digits on a dark background, like MNIST).") var inputs:
        [String]
    @Option(parsing: .unconditional, help: "Classes to show per image.") var top: Int = 3
    @Option(parsing: .unconditional, help: "Images to show per IDX file.") var limit: Int = 10

    func run() throws {
        guard !inputs.isEmpty else { fail(.usage("name at least one image")) }
        do { try predict() } catch { fail(error) }
    }

    func predict() throws(LoomError) {
        do {
            let saved = try SavedModel(path: weights)
            var named: [(String, [Float])] = []
            for path in inputs {
                named += try readPredictionInputs(path, features: saved.inputWidth).prefix(max(1, limit))
            }
            let probabilities = try saved.predict(named.map(\.1))
            for ((name, _), p) in zip(named, probabilities) {
                let ranked = p.enumerated().sorted { $0.element > $1.element }.prefix(max(1, top))
                print(
                    name + ": "
                        + ranked.map { String(format: "%d (%.4f)", $0.offset, $0.element) }.joined(separator: ", "))
            }
        }
    }
}
