// What a new user does in the first hour, beyond the README's happy path: signals delivered twice, runs cut
// short and resumed, output paths that cannot be written, configs kept elsewhere, typos on the command line.
import Foundation
import LoomEngine
import LoomTestSupport
import Testing

/// Starts `loom` (or another program) with stdout and stderr in pipes; read them with `finish`.
final class Running {
    let process = Process()
    let out = Pipe()
    let err = Pipe()

    init(_ args: [String], executable: String = loomBinary, cwd: String = root, environment: [String: String] = [:])
        throws
    {
        process.executableURL = URL(fileURLWithPath: executable)
        if !environment.isEmpty {
            process.environment = ProcessInfo.processInfo.environment.merging(environment) { $1 }
        }
        process.arguments = args
        process.currentDirectoryURL = URL(fileURLWithPath: cwd)
        process.standardOutput = out
        process.standardError = err
        try process.run()
    }

    var pid: Int32 { process.processIdentifier }

    func finish() -> Outcome {
        let o = out.fileHandleForReading.readDataToEndOfFile()
        let e = err.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        return Outcome(
            status: process.terminationStatus, stdout: String(decoding: o, as: UTF8.self),
            stderr: String(decoding: e, as: UTF8.self))
    }
}

func report(_ path: String) throws -> [String: Any] {
    try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: path))) as! [String: Any]
}

func digest(_ o: Outcome) -> Substring? {
    o.stdout.split(separator: "\n").first { $0.hasPrefix("weights_digest") }
}

/// The checkpoint named in an "interrupted … checkpoint written to X; resume with: …" line.
func checkpointNamed(_ message: String) -> String? {
    message.split(separator: " ").first { $0.hasSuffix(".safetensors;") }.map { String($0.dropLast()) }
}

@Suite("Signals delivered twice", .serialized)
struct DoubleSignalTests {
    /// A graceful stop: exit 130, one line naming the checkpoint and the resume command, a loadable checkpoint,
    /// and stdout (a pipe) kept whole.
    func expectGraceful(_ o: Outcome, sourceLocation: SourceLocation = #_sourceLocation) throws {
        #expect(o.status == 130, "\(o.stderr)", sourceLocation: sourceLocation)
        #expect(o.stderr.contains("interrupted by SIGINT after step"), "\(o.stderr)", sourceLocation: sourceLocation)
        #expect(o.stderr.contains("resume with: loom train"), sourceLocation: sourceLocation)
        #expect(o.stdout.contains("Epoch 1/"), "stdout lost: \(o.stdout)", sourceLocation: sourceLocation)
        let checkpoint = try #require(checkpointNamed(o.stderr), sourceLocation: sourceLocation)
        let e = try loom(["evaluate", checkpoint])
        #expect(e.status == 0, "\(e.stderr)", sourceLocation: sourceLocation)
    }

    @Test("two SIGINTs 1 ms apart stop gracefully, with a checkpoint and all of stdout")
    func twoSignals() throws {
        let dir = temporaryFolder("loom-cli")
        let run = try Running(["train", try longConfig(dir, epochs: 400), "--verbosity", "2"])
        usleep(1_200_000)
        kill(run.pid, SIGINT)
        usleep(1_000)
        kill(run.pid, SIGINT)
        try expectGraceful(run.finish())
    }

    @Test("timeout -s INT signals the child and its process group: still one graceful stop")
    func timeoutCommand() throws {
        let dir = temporaryFolder("loom-cli")
        let run = try Running(
            ["--preserve-status", "-s", "INT", "1.5", loomBinary, "train", try longConfig(dir, epochs: 400)],
            executable: "/usr/bin/timeout")
        try expectGraceful(run.finish())
    }

    @Test("Ctrl-C signals the whole process group, and a wrapper forwards it too: one graceful stop")
    func processGroup() throws {
        let dir = temporaryFolder("loom-cli")
        // setsid: a group of our own, so `kill 0` reaches only the shell and loom. The shell forwards the
        // signal it gets to loom as well, as `swift run`, job scripts and launchers do: loom hears it twice.
        let script = """
            "$0" train "$1" --workers 2 & child=$!
            trap 'kill -INT $child' INT
            sleep 1.2; kill -INT 0
            wait $child; wait $child
            """
        let run = try Running(
            ["-w", "sh", "-c", script, loomBinary, try longConfig(dir, epochs: 400)], executable: "/usr/bin/setsid")
        try expectGraceful(run.finish())
    }
}

@Suite("Counts that add up", .serialized)
struct CountTests {
    // The tiny IDX config: 12 samples, batch 4: 3 steps an epoch, 2 epochs.

    @Test("a --max-steps run counts the steps it ran and logs its partial epoch; its resume counts the rest")
    func maxStepsAndResume() throws {
        let dir = temporaryFolder("loom-cli")
        writeGoodIDX(dir)
        let config = idxConfig(dir)
        let cut = try loom([
            "train", config, "--max-steps", "4", "--set", "checkpoint.dir=\(dir)/ckpt", "--log-dir", dir + "/log",
            "--report", dir + "/cut.json",
        ])
        #expect(cut.status == 0, "\(cut.stderr)")
        #expect(cut.stdout.contains("trained 4 steps in"), "\(cut.stdout)")
        let r = try report(dir + "/cut.json")
        #expect(r["steps"] as? Int == 4 && r["samples"] as? Int == 16 && r["epochs"] as? Int == 1)
        #expect((r["history"] as? [Any])?.count == 2)
        let csv = try String(contentsOfFile: dir + "/log/metrics.csv", encoding: .utf8).split(separator: "\n")
        #expect(csv.count == 3, "\(csv)")  // header, epoch 1, a third of epoch 2
        #expect(csv.last?.hasPrefix("2,0.333") == true && csv.last?.split(separator: ",")[2] == "4", "\(csv)")

        let resumed = try loom([
            "train", config, "--resume", dir + "/ckpt/ckpt-000000004.safetensors", "--set",
            "checkpoint.dir=\(dir)/ckpt", "--log-dir", dir + "/log", "--report", dir + "/resumed.json",
        ])
        #expect(resumed.status == 0, "\(resumed.stderr)")
        #expect(resumed.stdout.contains("trained 2 steps in"), "\(resumed.stdout)")
        let r2 = try report(dir + "/resumed.json")
        #expect(r2["steps"] as? Int == 2 && r2["samples"] as? Int == 8)
        let seconds = try #require(r2["train_seconds"] as? Double)
        let rate = try #require(r2["samples_per_second"] as? Double)
        #expect(abs(rate * seconds - 8) < 0.01)
        let csv2 = try String(contentsOfFile: dir + "/log/metrics.csv", encoding: .utf8).split(separator: "\n")
        #expect(csv2.count == 3 && csv2.last?.hasPrefix("2,1.0,6,") == true, "\(csv2)")

        // The final checkpoint is past the 2 epochs asked for.
        let again = try loom(["train", config, "--resume", dir + "/ckpt/ckpt-000000006.safetensors"])
        #expect(again.status == 0 && again.stdout.contains("past the 2 epochs asked for: nothing to train"))
        #expect(again.stdout.contains("trained 0 steps"))
    }

    @Test("a run shorter than one epoch still writes its metrics row; one step is '1 step'")
    func shorterThanAnEpoch() throws {
        let dir = temporaryFolder("loom-cli")
        writeGoodIDX(dir)
        let o = try loom(["train", idxConfig(dir), "--max-steps", "1", "--log-dir", dir + "/log"])
        #expect(o.status == 0 && o.stdout.contains("trained 1 step in"), "\(o.stdout)")
        let csv = try String(contentsOfFile: dir + "/log/metrics.csv", encoding: .utf8).split(separator: "\n")
        #expect(csv.count == 2 && csv[1].hasPrefix("1,0.333"), "\(csv)")
        #expect(FileManager.default.fileExists(atPath: dir + "/log/metrics.svg"))
    }
}

@Suite("Nothing lost at the end of a run", .serialized)
struct OutputTests {
    @Test("missing output folders are created, for every output the same way")
    func createsFolders() throws {
        let dir = temporaryFolder("loom-cli")
        writeGoodIDX(dir)
        let o = try loom([
            "train", idxConfig(dir), "--report", dir + "/a/r.json", "--save-weights", dir + "/b/c/w.safetensors",
            "--log-dir", dir + "/d/log", "--set", "checkpoint.dir=\(dir)/e/ckpt",
        ])
        #expect(o.status == 0, "\(o.stderr)")
        for path in ["/a/r.json", "/b/c/w.safetensors", "/d/log/metrics.csv", "/e/ckpt"] {
            #expect(FileManager.default.fileExists(atPath: dir + path), "\(path)")
        }
    }

    @Test(
        "an output that cannot be written is refused before training",
        arguments: [
            ["--report", "/proc/loom/r.json"], ["--save-weights", "/proc/w.safetensors"],
            ["--log-dir", "/proc/loom-log"],
            ["--set", "checkpoint.dir=/proc/loom-ckpt"], ["--report", "FILE/r.json"],
        ])
    func refusedUpFront(option: [String]) throws {
        let dir = temporaryFolder("loom-cli")
        writeGoodIDX(dir)
        _ = FileManager.default.createFile(atPath: dir + "/FILE", contents: Data("x".utf8))
        let args = option.map { $0.replacingOccurrences(of: "FILE", with: dir + "/FILE") }
        let o = try loom(["train", idxConfig(dir)] + args)
        expectOneLineError(o, [args[0] == "--set" ? "checkpoint.dir" : args[0]])
        #expect(!o.stdout.contains("Epoch"), "trained before failing: \(o.stdout)")
    }

    @Test("weights whose folder vanished during training go to a fallback file, named in the error")
    func fallback() throws {
        let dir = temporaryFolder("loom-cli")
        let config = try longConfig(dir, epochs: 30)
        try FileManager.default.createDirectory(atPath: dir + "/out", withIntermediateDirectories: true)
        let run = try Running(["train", config, "--save-weights", dir + "/out/w.safetensors"], cwd: dir)
        usleep(800_000)
        try FileManager.default.removeItem(atPath: dir + "/out")
        let o = run.finish()
        #expect(o.status == 1, "\(o.stderr)")
        let fallback = try #require(o.stderr.split(separator: " ").last.map { String($0.dropLast()) })
        #expect(o.stderr.contains("they were saved to") && fallback.hasPrefix(dir), "\(o.stderr)")
        #expect(try loom(["evaluate", fallback]).status == 0)
    }
}

@Suite("Paths in configs", .serialized)
struct PathTests {
    @Test("data paths in a config are relative to the config file; --set paths to the working folder")
    func relativeToConfig() throws {
        let dir = temporaryFolder("loom-cli")
        writeGoodIDX(dir)
        try FileManager.default.createDirectory(atPath: dir + "/configs", withIntermediateDirectories: true)
        let text = try String(contentsOfFile: idxConfig(dir), encoding: .utf8)
            .replacingOccurrences(of: dir + "/", with: "../")
        try text.write(toFile: dir + "/configs/rel.yaml", atomically: true, encoding: .utf8)
        #expect(try loom(["train", dir + "/configs/rel.yaml"]).status == 0)  // run from the repository root
        let o = try loom(["train", "configs/rel.yaml", "--set", "data.test_images=test-images"], cwd: dir)
        #expect(o.status == 0, "\(o.stderr)")
    }

    @Test("a missing IDX file names the key that changes it")
    func hintNamesKey() throws {
        let dir = temporaryFolder("loom-cli")
        writeGoodIDX(dir)
        try FileManager.default.removeItem(atPath: dir + "/train-labels")
        expectOneLineError(try loom(["train", idxConfig(dir)]), ["train-labels: no such file", "data.train_labels"])
    }

    @Test("the shipped MNIST config finds its data from any working folder")
    func mnistFromElsewhere() throws {
        let o = try loom(
            ["train", root + "/configs/mnist.yaml", "--max-steps", "1", "--quiet"], cwd: temporaryFolder("loom-cli"))
        #expect(o.status == 0, "\(o.stderr)")
    }

    @Test("evaluate reads only the test files")
    func evaluateNeedsOnlyTest() throws {
        let dir = temporaryFolder("loom-cli")
        writeGoodIDX(dir)
        #expect(try loom(["train", idxConfig(dir), "--save-weights", dir + "/w.safetensors"]).status == 0)
        try FileManager.default.removeItem(atPath: dir + "/train-images")
        let o = try loom(["evaluate", dir + "/w.safetensors"])
        #expect(o.status == 0, "\(o.stderr)")
        #expect(o.stdout.contains("on the test set \(dir)/test-images (3 samples)"), "\(o.stdout)")
    }
}

@Suite("One command line", .serialized)
struct CommandLineTests {
    @Test("parser errors: one 'error:' line, exit code 2, like Loom's own")
    func parserErrors() throws {
        for args in [["train", "configs/mnist.yaml", "--epoch", "3"], ["train"], ["bogus"], ["train", "--workers"]] {
            let o = try loom(args)
            #expect(o.status == 2, "\(args): \(o.status)")
            expectOneLineError(o, ["error: ", "--help"])
        }
    }

    @Test("--version, --help")
    func versionAndHelp() throws {
        let v = try loom(["--version"])
        #expect(v.status == 0 && v.stdout == Version.loom + "\n")
        let h = try loom(["train", "--help"])
        #expect(h.status == 0 && h.stdout.contains("--quiet") && h.stdout.contains("--verbosity"))
    }

    @Test("--quiet prints no progress; --verbosity 2 a line per epoch; --verbose a live bar")
    func verbosity() throws {
        let dir = temporaryFolder("loom-cli")
        writeGoodIDX(dir)
        let config = idxConfig(dir)
        let quiet = try loom(["train", config, "--quiet"])
        #expect(quiet.status == 0 && !quiet.stdout.contains("Epoch") && quiet.stdout.contains("weights_digest"))
        let lines = try loom(["train", config, "--verbosity", "2"])
        #expect(lines.stdout.contains("Epoch 2/2\n3/3 ") && !lines.stdout.contains("\r"))
        let bar = try loom(["train", config, "--verbose"])
        #expect(bar.stdout.contains("\r"))
        expectOneLineError(try loom(["train", config, "--verbosity", "3"]), ["--verbosity 3"])
        expectOneLineError(try loom(["train", config, "--quiet", "--verbose"]), ["exclude each other"])
    }

    @Test("the printed resume command keeps the overrides, and following it keeps checkpointing to the same digest")
    func resumeCommandKeepsOverrides() throws {
        let dir = temporaryFolder("loom-cli")
        writeGoodIDX(dir)
        let config = idxConfig(dir)
        let whole = try loom(["train", config, "--set", "optimizer.learning_rate=0.05"])
        let cut = try loom([
            "train", config, "--set", "optimizer.learning_rate=0.05", "--set", "checkpoint.dir=\(dir)/ck pt",
            "--max-steps", "4",
        ])
        let line = try #require(cut.stdout.split(separator: "\n").first { $0.contains("resume with: ") })
        let command = String(line.split(separator: "resume with: ")[1])
        #expect(!command.contains("--max-steps") && command.contains("checkpoint.dir="), "\(command)")
        // Run it as a user would paste it into a shell.
        let resumed = try Running(
            ["-c", command.replacingOccurrences(of: "loom ", with: "\"$0\" ", options: .anchored), loomBinary],
            executable: "/bin/sh"
        ).finish()
        #expect(resumed.status == 0, "\(resumed.stderr)")
        #expect(digest(resumed) == digest(whole))
        #expect(FileManager.default.fileExists(atPath: dir + "/ck pt/ckpt-000000006.safetensors"))
    }

    @Test("predict --top/--limit below 1, and files of the wrong kind, are one clear line")
    func wrongValuesAndFiles() throws {
        let dir = temporaryFolder("loom-cli")
        writeGoodIDX(dir)
        let config = idxConfig(dir)
        #expect(try loom(["train", config, "--save-weights", dir + "/w.safetensors"]).status == 0)
        expectOneLineError(
            try loom(["predict", dir + "/w.safetensors", dir + "/test-images", "--top", "0"]), ["--top 0"])
        expectOneLineError(
            try loom(["predict", dir + "/w.safetensors", dir + "/test-images", "--limit", "0"]), ["--limit 0"])
        expectOneLineError(try loom(["evaluate", config]), ["is a YAML config, not a weights file", "loom train"])
        expectOneLineError(
            try loom(["train", dir + "/w.safetensors"]), ["is a safetensors weights file", "--init-weights"])
        expectOneLineError(
            try loom(["predict", dir + "/w.safetensors", dir + "/test-labels"]), ["one value per sample"])
    }
}

@Suite("Installed like a tool; readable output")
struct ToolTests {
    @Test("a LICENSE, and an install step the README documents and uses")
    func installable() throws {
        let license = try String(contentsOfFile: root + "/LICENSE", encoding: .utf8)
        #expect(license.contains("MIT License") || license.contains("Apache License"))
        let readme = try String(contentsOfFile: root + "/README.md", encoding: .utf8)
        #expect(readme.contains("install -m 755 .build/release/loom"))
        #expect(!readme.contains(".build/release/loom train"), "later sections should use the installed `loom`")
    }

    @Test("the README's command table lists every option of every command")
    func readmeListsEveryOption() throws {
        let readme = try String(contentsOfFile: root + "/README.md", encoding: .utf8)
        let table = try #require(
            readme.components(separatedBy: "## Commands").dropFirst().first?
                .components(separatedBy: "\n## ").first)
        for command in [
            ["train"], ["evaluate"], ["predict"], ["summary"], ["plan"], ["tune"], ["topology"], ["bench", "kernels"],
            ["bench", "step"], ["bench", "scaling"], ["bench", "project"],
        ] {
            let help = try loom(command + ["--help"]).stdout
            let options = Set(
                help.components(separatedBy: "OPTIONS:").last!.split(separator: " ")
                    .filter { $0.hasPrefix("--") && $0.count > 2 }
                    .map { String($0.prefix { $0 == "-" || $0.isLetter }) })
            #expect(options.count > 1, "\(command)")
            for option in options where option != "--help" && option != "--version" {
                #expect(table.contains("`\(option)") || table.contains("/\(option)"), "\(command): \(option)")
            }
        }
    }

    @Test("chart axes: round ticks, accuracy within 0...1, a loss axis from 0")
    func axes() {
        let accuracy = Axis(covering: 0.9236, 0.9886, ticks: 5, limits: 0...1)
        #expect(accuracy.lo == 0.92 && accuracy.hi <= 1 && abs(accuracy.step - 0.02) < 1e-12)
        #expect(accuracy.ticks.map(accuracy.label) == ["0.92", "0.94", "0.96", "0.98", "1.00"])
        let loss = Axis(covering: 0.038, 0.2653, ticks: 5, limits: 0...Double.infinity)
        #expect(loss.lo == 0 && loss.ticks.map(loss.label) == ["0.00", "0.05", "0.10", "0.15", "0.20", "0.25", "0.30"])
        let flat = Axis(covering: 1, 1, limits: 0...1)
        #expect(flat.lo < 1 && flat.hi == 1)
    }
}
