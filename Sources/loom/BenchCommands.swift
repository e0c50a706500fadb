// loom bench kernels | step | scaling: measured speed, printed and saved.
import ArgumentParser
import Foundation
import Loom

struct BenchCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "bench", abstract: "Measure kernel speed and scaling.",
        subcommands: [KernelsBench.self, StepBench.self, ScalingBench.self, ProjectBench.self, LoadBench.self])
}

struct LoadBench: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "load",
        abstract: "Time loading a config's data set, and the memory it holds afterwards against its arrays' bytes.")
    @OptionGroup var options: ConfigOptions

    func run() throws {
        let config: RunConfig
        do { config = try options.load() } catch { fail(error) }
        let before = residentBytes()
        let start = monotonicSeconds()
        let data: DataSplits
        do { data = try loadDataset(config.data) } catch { fail(.data(error)) }
        let seconds = monotonicSeconds() - start
        let grown = residentBytes() - before
        let arrays = [data.train, data.test].reduce(0) { $0 + $1.storageBytes }
        print(
            String(
                format:
                    "loaded %d training and %d test samples of %d features in %.3f s; arrays %.1f MB, resident memory grew by %.1f MB (%.2f× the arrays)",
                data.train.count, data.test.count, data.train.features, seconds, Double(arrays) / 1e6,
                Double(grown) / 1e6, arrays > 0 ? Double(grown) / Double(arrays) : 0))
    }

    /// This process's resident memory now (/proc/self/statm).
    func residentBytes() -> Int {
        guard let text = try? String(contentsOfFile: "/proc/self/statm", encoding: .utf8) else { return 0 }
        let fields = text.split(separator: " ")
        return fields.count > 1 ? (Int(fields[1]) ?? 0) * Int(sysconf(Int32(_SC_PAGESIZE))) : 0
    }
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
        if let json { checkWritable(json, option: "--json") }
        let (peak, results) = Bench.kernels(workers: n, placements: topology.placement(workers: n))
        print("kernels: \(kernelsLine())")
        print(
            String(
                format: "fp32 FMA peak of one core (measured): %.1f GFLOP/s (%d-wide vectors)", peak,
                ProcessSetup.vectorLanes))
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
        if let json { checkWritable(json, option: "--json") }
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
        let world: Communicator
        do { world = try Communicator.world() } catch { fail(error) }
        let topology = world.isDistributed ? world.shareCPUs(.detect()).0 : .detect()
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
        do {
            run = try TrainingRun(
                config: try options.load(extra: ["training.workers=1"]), topology: topology, communicator: world)
        } catch { failRank(world, error) }
        if let bad = counts.first(where: { $0 > run.config.training.batchSize }) {
            fail(.usage("--workers \(bad) is more than the batch size \(run.config.training.batchSize)"))
        }
        do { try FileManager.default.createDirectory(atPath: out, withIntermediateDirectories: true) } catch {
            fail(.usage("cannot create \(out): \(error.localizedDescription)"))
        }
        guard repeats >= 1 else { fail(.usage("--repeats \(repeats): at least one round is needed")) }
        let rows = Bench.scaling(
            run, workers: counts, steps: steps, repeats: repeats, topology: topology, communicator: world)
        if world.isDistributed {
            if world.rank == 0 { printRanks(rows, run: run) }
            world.finalize()
            return
        }
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

    /// The table of a run under mpirun: ranks × threads against one process with one thread.
    func printRanks(_ rows: [ScalingResult], run: TrainingRun) {
        print(
            "ranks × threads  samples/s  speed-up over 1×1  efficiency  MB sent/step/rank  of them early  exposed ms/step  % of step"
        )
        for r in rows {
            let stepMs = 1e3 * Double(run.config.training.batchSize) / r.samplesPerSecond
            let ms = r.communicationMillisecondsPerStep ?? 0
            print(
                String(
                    format: "%@  %9.0f  %16.2f×  %10.2f  %17.2f  %13.2f  %15.3f  %8.0f%%",
                    padded("\(r.ranks) × \(r.workers)", 15), r.samplesPerSecond, r.speedup, r.efficiency,
                    r.megabytesSentPerStep ?? 0, r.megabytesStartedEarlyPerStep ?? 0, ms, 100 * ms / stepMs))
        }
        print(
            "(\"early\": started while later stages computed, hidden where the network moves them meanwhile; \"exposed\": what worker 0 waited for)"
        )
        if let json { writeOrFail(Bench.json(rows), json) }
    }
}

struct ProjectBench: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "project",
        abstract:
            "Project a step's time on W workers from each worker's share, timed on one core (an estimate), for the row-only and the automatic schedules."
    )
    @OptionGroup var options: ConfigOptions
    @Option(help: "Worker counts to project, comma-separated.") var workers: String = "2,4,8,16,32,64"
    @Option(parsing: .unconditional, help: "Timed steps per worker count and schedule (each part keeps its best).")
    var steps: Int = 20
    @Flag(help: "Also print each stage's slowest and fastest worker part.") var stages = false
    @Option(help: "Also write the results as JSON to this file.") var json: String?

    func run() throws {
        guard steps >= 1 else { fail(.usage("--steps \(steps): at least one step is needed")) }
        var counts: [Int] = []
        for part in workers.split(separator: ",") {
            guard let n = Int(part.trimmingCharacters(in: .whitespaces)), n >= 2 else {
                fail(.usage("--workers \(workers): expected worker counts ≥ 2 separated by commas, e.g. 4,16,64"))
            }
            counts.append(n)
        }
        if let json { checkWritable(json, option: "--json") }
        let run: TrainingRun
        do { run = try TrainingRun(config: try options.load(extra: ["training.workers=1"])) } catch { fail(error) }
        if let bad = counts.first(where: { $0 > run.config.training.batchSize }) {
            fail(.usage("--workers \(bad) is more than the batch size \(run.config.training.batchSize)"))
        }
        let topology = Topology.detect()
        let barrier = Bench.measureBarrier(placements: topology.placement(workers: min(2, topology.usableCPUs.count)))
        // This thread does the timing: pin it to one CPU, as a worker would be.
        ProcessSetup.pinCurrentThread(to: topology.usableCPUs.last ?? 0)
        let rows = Bench.project(run, workers: counts, steps: steps, barrierTwo: barrier)
        print(
            "PROJECTION (an estimate): each worker's share of a step of \(run.train.name), batch \(run.config.training.batchSize), timed on one core, against one worker's step timed in turns with each W; step = slowest share per stage + barriers (⌈log₂ W⌉ rounds, ⌈log₂ G⌉ within groups of G, of max(\(String(format: "%.2f", barrier * 1e6)) µs measured between 2 threads here, \(String(format: "%.1f", Bench.minimumRound * 1e6)) µs) each)"
        )
        print(
            "workers  schedule  largest share  barriers      step  projected speed-up  projected efficiency  one worker"
        )
        for r in rows {
            print(
                String(
                    format: "%7d  %-8@  %10.3f ms  %2d × %.1fµs %7.3f ms  %17.2f×  %20.2f  %7.3f ms", r.workers,
                    r.schedule, r.largestShareMilliseconds, r.barriers,
                    r.barrierMilliseconds * 1e3 / Double(max(1, r.barriers)), r.stepMilliseconds, r.speedup,
                    r.efficiency, r.oneWorkerMilliseconds))
            if stages {
                for t in r.stages {
                    print(
                        String(
                            format: "           %@: slowest %.2f µs, fastest %.2f µs", t.stage, t.slowestMicroseconds,
                            t.fastestMicroseconds))
                }
            }
        }
        if let json { writeOrFail(Bench.json(rows), json) }
    }
}
