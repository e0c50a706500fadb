// loom tune: a hyperparameter sweep. Each trial is an ordinary `loom train` run of its own, in its own folder
// (resolved config, metrics, report, weights), started as a child process pinned to its group of CPUs, K at a
// time (`--parallel K`, groups taken node by node). A trial is finished when its report exists (written
// atomically at its end), so a killed sweep rerun with the same command runs only the missing trials.
import ArgumentParser
import Foundation
import Loom

struct Tune: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract:
            "Sweep hyperparameters: a trial per grid point (and sample), each an ordinary run in its own folder; prints a leaderboard."
    )
    @OptionGroup var options: ConfigOptions
    @Option(
        help: ArgumentHelp(
            "Values to try for a key, e.g. --grid optimizer.learning_rate=1e-3,3e-4 (repeatable; the trials are their product).",
            valueName: "key.path=v1,v2,…"))
    var grid: [String] = []
    @Option(
        help: ArgumentHelp(
            "A key to draw --samples times: uniform(a,b), loguniform(a,b) or choice(x,y,…) (repeatable).",
            valueName: "key.path=dist(…)"))
    var sample: [String] = []
    @Option(parsing: .unconditional, help: "Draws of the --sample keys (crossed with the grid).") var samples: Int = 0
    @Option(name: .customLong("sample-seed"), parsing: .unconditional, help: "Seed of the draws.") var sampleSeed: Int =
        1
    @Option(parsing: .unconditional, help: "Trials run at a time, each on its own group of CPUs.") var parallel: Int = 1
    @Option(parsing: .unconditional, help: "Workers per trial (default: the CPUs of its group).") var workers: Int?
    @Option(help: "Folder of the trial folders, tune.csv, tune.json and tune.svg.") var out: String = "tune"
    @Option(
        help:
            "What ranks the trials: test_accuracy, test_loss, or the last epoch's val_accuracy, val_loss, accuracy, loss (regression: test_mae, test_rmse, val_mae, mae)."
    )
    var monitor: String = "test_accuracy"

    static let monitors = [
        "test_accuracy", "test_loss", "val_accuracy", "val_loss", "accuracy", "loss", "test_mae", "test_rmse",
        "val_mae",
        "mae",
    ]

    func run() throws {
        guard Tune.monitors.contains(monitor) else {
            fail(.usage("--monitor \(monitor): expected one of \(Tune.monitors.joined(separator: ", "))"))
        }
        guard parallel >= 1 else { fail(.usage("--parallel \(parallel): at least one trial at a time")) }
        if let workers, workers < 1 { fail(.usage("--workers \(workers): at least one worker is needed")) }
        let trials: [Trial]
        do {
            // The config's sweep section, then the command line's grid and samples.
            let sweep = try options.load().sweep
            trials = try Sweep.trials(
                grid: sweep.grid + grid, samples: sweep.sample + sample, count: samples > 0 ? samples : sweep.samples,
                seed: UInt64(max(0, sampleSeed != 1 ? sampleSeed : sweep.sampleSeed)))
            // Every trial's config must load before anything runs.
            for t in trials { _ = try options.load(extra: t.overrides) }
        } catch { fail(error) }
        do { try OutputPaths.prepareFolder(out, option: "--out") } catch { fail(error) }
        let groups = cpuGroups()
        let pending = trials.filter { !FileManager.default.fileExists(atPath: reportPath($0)) }
        print(
            "Sweep of \(trials.count) trial\(trials.count == 1 ? "" : "s") in \(out)/ (\(trials.count - pending.count) already finished), \(groups.count) at a time on CPUs \(groups.map { compactList($0) }.joined(separator: " | "))"
        )
        runTrials(pending, groups: groups)
        report(trials)
    }

    func reportPath(_ t: Trial) -> String { "\(out)/\(t.name)/report.json" }

    /// The usable CPUs, node by node, in `parallel` groups.
    func cpuGroups() -> [[Int]] {
        let topology = Topology.detect()
        let cpus = topology.placement(workers: topology.usableCPUs.count).map(\.cpu)
        let k = min(parallel, cpus.count)
        return (0..<k).map { Array(cpus[shard(cpus.count, part: $0, of: k)]) }
    }

    /// Runs the trials, one per free CPU group, as child `loom train` processes.
    func runTrials(_ trials: [Trial], groups: [[Int]]) {
        let free = DispatchSemaphore(value: groups.count)
        let available = FreeGroups(groups)
        let done = DispatchGroup()
        let me = URL(fileURLWithPath: "/proc/self/exe").resolvingSymlinksInPath().path
        for trial in trials {
            free.wait()
            let cpus = available.take()
            let folder = "\(out)/\(trial.name)"
            try? FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
            var args = ["-c", compactList(cpus), me, "train", options.config, "--quiet"]
            for o in options.overrides + trial.overrides { args += ["--set", o] }
            args += [
                "--workers", String(workers ?? cpus.count), "--report", folder + "/report.json", "--log-dir", folder,
                "--save-weights", folder + "/weights.safetensors",
            ]
            let p = Process()
            // The trial stops (without a report, so a rerun runs it again) if this sweep is killed.
            p.environment = ProcessInfo.processInfo.environment.merging(["LOOM_PARENT_PID": String(getpid())]) { $1 }
            p.executableURL = URL(fileURLWithPath: "/usr/bin/taskset")
            p.arguments = args
            _ = FileManager.default.createFile(atPath: folder + "/output.log", contents: nil)
            let log = FileHandle(forWritingAtPath: folder + "/output.log")
            p.standardOutput = log
            p.standardError = log
            done.enter()
            p.terminationHandler = { process in
                try? log?.close()
                let status = process.terminationStatus
                print(
                    "\(trial.name) \(status == 0 ? "finished" : "failed (exit \(status), see \(folder)/output.log)"): \(trial.overrides.joined(separator: " "))"
                )
                fflush(nil)
                available.give(cpus)
                free.signal()
                done.leave()
            }
            do { try p.run() } catch {
                print("\(trial.name) could not start: \(error.localizedDescription)")
                available.give(cpus)
                free.signal()
                done.leave()
            }
        }
        done.wait()
    }

    /// One trial's outcome, read back from its report.
    struct Row: Codable {
        var trial: String
        var overrides: [String]
        var value: Double?
        var testAccuracy: Double?
        var weightsDigest: String?
        var trainSeconds: Double?
    }

    func row(_ t: Trial) -> Row {
        var row = Row(trial: t.name, overrides: t.overrides)
        guard let data = FileManager.default.contents(atPath: reportPath(t)),
            let r = try? JSONSerialization.jsonObject(with: data) as? [String: Any]
        else { return row }
        row.testAccuracy = r["test_accuracy"] as? Double
        row.weightsDigest = r["weights_digest"] as? String
        row.trainSeconds = r["train_seconds"] as? Double
        let last = (r["history"] as? [[String: Any]])?.last
        row.value =
            switch monitor {
            case "test_accuracy", "test_loss", "test_mae", "test_rmse": r[monitor] as? Double
            default: last?[monitor] as? Double
            }
        return row
    }

    /// Prints the leaderboard and writes tune.csv, tune.json and tune.svg.
    func report(_ trials: [Trial]) {
        let lowerIsBetter = monitor.hasSuffix("loss")
        let rows = trials.map(row).sorted { a, b in
            switch (a.value, b.value) {
            case (let x?, let y?): lowerIsBetter ? x < y : x > y
            case (nil, _?): false
            case (_?, nil): true
            default: a.trial < b.trial
            }
        }
        print("rank  trial      \(padded(monitor, 14)) weights_digest     overrides")
        for (i, r) in rows.enumerated() {
            let value = r.value.map { String(format: "%.4f", $0) } ?? "failed"
            print(
                "\(padded(String(i + 1), 5)) \(padded(r.trial, 10)) \(padded(value, 14)) \(padded(String((r.weightsDigest ?? "-").prefix(16)), 18)) \(r.overrides.joined(separator: " "))"
            )
        }
        var csv = "rank,trial,\(monitor),weights_digest,train_seconds,overrides\n"
        for (i, r) in rows.enumerated() {
            csv +=
                "\(i + 1),\(r.trial),\(r.value.map { "\($0)" } ?? ""),\(r.weightsDigest ?? ""),\(r.trainSeconds.map { "\($0)" } ?? ""),\"\(r.overrides.joined(separator: " "))\"\n"
        }
        writeOrFail(csv, out + "/tune.csv")
        if let json = try? JSONEncoder().encode(rows) {
            writeOrFail(String(decoding: json, as: UTF8.self) + "\n", out + "/tune.json")
        }
        writeOrFail(
            tuneChart(rows.sorted { $0.trial < $1.trial }.map { ($0.overrides, $0.value) }, monitor: monitor),
            out + "/tune.svg")
        print("wrote \(out)/tune.csv, \(out)/tune.json, \(out)/tune.svg")
    }
}

/// The CPU groups of a sweep not running a trial now. Sendable: every access to `groups` holds `lock` (the
/// main thread takes groups, the trials' termination handlers give them back).
final class FreeGroups: @unchecked Sendable {
    private let lock = NSLock()
    private var groups: [[Int]]

    init(_ groups: [[Int]]) { self.groups = groups }

    /// A free group (the caller has waited for one on the semaphore counting them).
    func take() -> [Int] {
        lock.lock()
        defer { lock.unlock() }
        return groups.removeFirst()
    }

    func give(_ group: [Int]) {
        lock.lock()
        groups.append(group)
        lock.unlock()
    }
}
