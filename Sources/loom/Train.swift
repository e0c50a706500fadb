// loom train: a config in, a trained model, its test accuracy and digest out; Keras-style progress.
import ArgumentParser
import Foundation
import Loom

struct Train: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Train a model described by a config, then evaluate it on the test set.")

    @OptionGroup var options: ConfigOptions
    // `.unconditional`: "--workers -2" reaches our validation (one clear line) instead of being read as a flag.
    @Option(parsing: .unconditional, help: "Epochs (training.epochs).") var epochs: Int?
    @Option(name: .customLong("batch-size"), parsing: .unconditional, help: "Samples per batch (training.batch_size).")
    var batchSize: Int?
    @Option(parsing: .unconditional, help: "Seed for initialization, shuffling and dropout (training.seed).")
    var seed: Int?
    @Option(parsing: .unconditional, help: "Worker threads (training.workers); default: one per usable CPU.")
    var workers: String?
    @Option(help: "Write a JSON report of the run to this file.") var report: String?
    @Option(name: .customLong("save-weights"), help: "Write the final weights (safetensors) to this file.")
    var saveWeights: String?
    @Option(
        name: .customLong("init-weights"), help: "Start from these weights (safetensors) instead of the initializers.")
    var initWeights: String?
    @Option(help: "Continue the run saved in this checkpoint (any worker count gives the same result).")
    var resume: String?
    @Option(
        name: .customLong("max-steps"), parsing: .unconditional,
        help: "End the run after this many optimizer steps (counting from the start of training).")
    var maxSteps: Int?
    @Option(name: .customLong("log-dir"), help: "Write metrics.csv, metrics.jsonl, config.yaml and metrics.svg here.")
    var logDir: String?
    @Flag(name: .shortAndLong, help: "No progress lines (Keras verbose=0); results are still printed.")
    var quiet = false
    @Flag(name: .shortAndLong, help: "A live progress bar even when stdout is not a terminal (Keras verbose=1).")
    var verbose = false
    @Option(
        parsing: .unconditional,
        help: "Keras' verbose: 0 no progress, 1 live bar, 2 one line per epoch (default: 1 on a terminal, else 2).")
    var verbosity: Int?

    func run() throws {
        // Under an MPI launcher, one of several ranks: rank 0 prints and writes, every rank trains.
        let world: Communicator
        do { world = try Communicator.world() } catch { fail(error) }
        let lead = world.rank == 0
        let progress = lead ? progressMode() : .none
        var loaded: (RunConfig, TrainingRun)?
        // Ranks sharing a host and its CPUs split them (mpirun --bind-to none): no two pin workers to one CPU.
        let topology = world.isDistributed ? world.shareCPUs(.detect()).0 : .detect()
        do {
            let config = try options.load(extra: try overrides())
            loaded = (config, try TrainingRun(config: config, topology: topology, communicator: world))
        } catch {
            guard world.isDistributed else { fail(error) }
            do { try world.agree(RankStart(error: "\(error)")) } catch { failRank(world, error) }
        }
        guard let (config, run) = loaded else { failRank(world, .usage("could not start")) }
        do { try world.agree(RankStart(config: config, data: run.data, threads: run.placements.count)) } catch {
            failRank(world, error)
        }
        if let report, lead { checkWritable(report, option: "--report") }
        ProcessSetup.installStopSignalHandlers()
        stopWhenParentDies()
        if lead { for w in run.warnings { FileHandle.standardError.write(Data((w + "\n").utf8)) } }
        if progress != .none { print(header(run)) }
        let result: RunResult
        do { result = try run.run(runOptions(), progress: ProgressPrinter(mode: progress).show) } catch {
            failRank(world, error)
        }
        if lead { printResult(result) }
        if let report, lead {
            let json = ReportWriter.json(config: config, run: run, result: result)
            do { try atomicWrite(json, to: report) } catch {
                fail(.output("cannot write the report \(report): \(error.localizedDescription)"))
            }
        }
        world.finalize()
    }

    /// The command-line options as config overrides (`--epochs 3` is `--set training.epochs=3`).
    func overrides() throws(LoomError) -> [String] {
        var extra: [String] = []
        if let epochs { extra.append("training.epochs=\(epochs)") }
        if let batchSize { extra.append("training.batch_size=\(batchSize)") }
        if let seed { extra.append("training.seed=\(seed)") }
        if let workers {
            guard workers == "auto" || Int(workers) != nil else {
                throw .usage("--workers \(workers): expected a positive integer or auto")
            }
            if let n = Int(workers), n < 1 { throw .usage("--workers \(n): at least one worker is needed") }
            extra.append("training.workers=\(workers)")
        }
        if let maxSteps, maxSteps < 1 { throw .usage("--max-steps \(maxSteps): at least one step is needed") }
        return extra
    }

    func progressMode() -> ProgressPrinter.Mode {
        let modes = [quiet, verbose, verbosity != nil].filter { $0 }.count
        if modes > 1 { fail(.usage("--quiet, --verbose and --verbosity exclude each other; give one")) }
        if quiet { return .none }
        if verbose { return .bar }
        switch verbosity {
        case nil: return isatty(STDOUT_FILENO) == 1 ? .bar : .epochLines
        case 0: return .none
        case 1: return .bar
        case 2: return .epochLines
        case let v?: fail(.usage("--verbosity \(v): expected 0 (no progress), 1 (live bar) or 2 (a line per epoch)"))
        }
    }

    func runOptions() -> RunOptions {
        var o = RunOptions()
        o.initWeights = initWeights
        o.resume = resume
        o.maxSteps = maxSteps
        o.saveWeights = saveWeights
        o.logDir = logDir
        o.stopOnSignal = true
        let arguments = CommandLine.arguments
        o.resumeCommand = { ResumeCommand.make(arguments: arguments, checkpoint: $0) }
        return o
    }

    func header(_ run: TrainingRun) -> String {
        let validating = run.validation.map { ", validating on \($0.count)" } ?? ""
        let workers = run.placements.count
        let ranks = run.communicator.size
        let processes = ranks > 1 ? "\(ranks) ranks × " : ""
        return
            "Training \(run.train.name): \(run.train.count) samples\(validating), \(processes)\(workers) worker\(workers == 1 ? "" : "s"), batch \(run.config.training.batchSize), \(run.config.optimizer.name)"
    }

    func printResult(_ result: RunResult) {
        for note in result.notes + result.callbackMessages { print(note) }
        if let test = result.test {
            if let mae = test.meanAbsoluteError, let rmse = test.rootMeanSquaredError {
                print(
                    String(
                        format: "test_loss: %.4f - test_mae: %.4f - test_rmse: %.4f (%d samples)", test.loss, mae, rmse,
                        test.count))
            } else {
                print(
                    String(
                        format: "test_loss: %.4f - test_accuracy: %.4f (%d samples)", test.loss, test.accuracy,
                        test.count))
            }
        }
        if let stopped = result.stoppedAtStep, result.notes.isEmpty {
            let resume = result.lastCheckpoint.map {
                "; resume with: " + ResumeCommand.make(arguments: CommandLine.arguments, checkpoint: $0)
            }
            print(
                "stopped after step \(stopped) (--max-steps)" + (resume ?? "; set checkpoint.dir to be able to resume"))
        } else if let checkpoint = result.lastCheckpoint {
            print("last checkpoint: \(checkpoint)")
        }
        print(
            String(
                format: "trained %d step%@ in %.2f s (%.0f samples/s, %.3f s/epoch)", result.steps,
                result.steps == 1 ? "" : "s", result.trainSeconds, result.samplesPerSecond, result.secondsPerEpoch))
        if let c = result.communication {
            let stepSeconds = result.steps > 0 ? result.trainSeconds / Double(result.steps) : 0
            print(
                String(
                    format:
                        "communication: %.2f MB sent per step by each rank (%.2f MB of it started early), %.3f ms a step exposed (%.0f%% of the step)",
                    c.bytesPerStep / 1e6, c.startedBytesPerStep / 1e6, c.secondsPerStep * 1e3,
                    stepSeconds > 0 ? 100 * c.secondsPerStep / stepSeconds : 0))
        }
        print("weights_digest: \(result.weightsDigest)")
    }
}

/// Keras-style progress: "Epoch 1/5", then "469/469 ━━━━━━━━━━━━━━━━━━━━ 2s 4ms/step - accuracy: 0.92 - loss: 0.26",
/// redrawn in place (`bar`) or one line per epoch (`epochLines`), or nothing (`none`).
final class ProgressPrinter {
    enum Mode { case none, bar, epochLines }
    let mode: Mode
    var lastEpoch = 0

    init(mode: Mode) { self.mode = mode }

    func show(_ p: TrainingProgress) {
        guard mode != .none else { return }
        if p.epoch != lastEpoch {
            print("Epoch \(p.epoch)/\(p.epochs)")
            lastEpoch = p.epoch
        }
        guard mode == .bar || p.record != nil else { return }
        let width = 20
        let filled = p.steps > 0 ? width * p.step / p.steps : width
        let bar = String(repeating: "━", count: filled) + String(repeating: "─", count: width - filled)
        let msPerStep = p.step > 0 ? 1000 * p.elapsed / Double(p.step) : 0
        var line = String(
            format: "%d/%d %@ %.0fs %.2fms/step - %@: %.4f - loss: %.4f", p.step, p.steps, bar,
            p.elapsed, msPerStep, p.metric.rawValue, p.accuracy, p.loss)
        if let r = p.record, let vl = r.valLoss, let va = r.valAccuracy {
            line += String(format: " - val_%@: %.4f - val_loss: %.4f", r.metric.rawValue, va, vl)
        }
        if mode == .bar {
            print("\r\u{1B}[2K" + line, terminator: p.record != nil ? "\n" : "")
            fflush(nil)
        } else {
            print(line)
        }
    }
}

/// When started by `loom tune` (LOOM_PARENT_PID), stops like on SIGTERM once that process is gone: a sweep killed
/// with SIGKILL leaves no trial running on, and the interrupted trial writes no report, so a rerun redoes it.
func stopWhenParentDies() {
    guard let text = ProcessInfo.processInfo.environment["LOOM_PARENT_PID"], let parent = Int32(text) else { return }
    let thread = Thread {
        while getppid() == parent { usleep(200_000) }
        kill(getpid(), SIGTERM)
    }
    thread.start()
}
