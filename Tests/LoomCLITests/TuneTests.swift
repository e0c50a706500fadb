import Foundation
import LoomEngine
import LoomTestSupport
import Testing

@Suite("loom tune", .serialized)
struct TuneTests {
    @Test("the trials are the grid's product crossed with seeded draws; bad specs are one line")
    func trials() throws {
        let t = try Sweep.trials(grid: ["a=1,2", "b=x,y,z"], samples: [], count: 0, seed: 1)
        #expect(
            t.count == 6 && t[0].overrides == ["a=1", "b=x"] && t[5].overrides == ["a=2", "b=z"]
                && t[5].name == "trial-006")
        let s1 = try Sweep.trials(
            grid: ["a=1,2"], samples: ["lr=loguniform(1e-4,1e-2)", "c=choice(p,q)"], count: 3, seed: 5)
        let s2 = try Sweep.trials(
            grid: ["a=1,2"], samples: ["lr=loguniform(1e-4,1e-2)", "c=choice(p,q)"], count: 3, seed: 5)
        #expect(s1 == s2 && s1.count == 6)
        for trial in s1 {
            let lr = Double(trial.overrides[1].dropFirst(3))!
            #expect(lr >= 1e-4 && lr <= 1e-2)
        }
        #expect(throws: LoomError.self) { try Sweep.trials(grid: ["a"], samples: [], count: 0, seed: 1) }
        #expect(throws: LoomError.self) {
            try Sweep.trials(grid: [], samples: ["b=loguniform(0,1)"], count: 2, seed: 1)
        }
    }

    @Test("trials in parallel end with the digests of the same configs run alone; a rerun skips finished trials")
    func parallelAndRerun() throws {
        let dir = temporaryFolder("loom-cli")
        writeGoodIDX(dir)
        let config = idxConfig(dir)
        let grid = ["--grid", "optimizer.learning_rate=0.1,0.05", "--grid", "model.layers.0.units=8,16"]
        let one = try loom(["tune", config, "--out", dir + "/p1", "--parallel", "1"] + grid)
        #expect(one.status == 0, "\(one.stderr)")
        let two = try loom(["tune", config, "--out", dir + "/p2", "--parallel", "2"] + grid)
        #expect(two.status == 0 && two.stdout.contains("2 at a time"), "\(two.stdout)")
        func digests(_ folder: String) throws -> [String] {
            try (1...4).map { i in
                let r = try report(dir + "/\(folder)/" + String(format: "trial-%03d", i) + "/report.json")
                return r["weights_digest"] as! String
            }
        }
        #expect(try digests("p1") == digests("p2"))
        let alone = try loom([
            "train", config, "--set", "optimizer.learning_rate=0.05", "--set", "model.layers.0.units=16",
        ])
        #expect(digest(alone).map { String($0.dropFirst("weights_digest: ".count)) } == (try digests("p1"))[3])
        // A rerun: trial 3's report removed as if the sweep had been killed during it.
        let finished =
            try FileManager.default.attributesOfItem(atPath: dir + "/p1/trial-001/report.json")[.modificationDate]
            as! Date
        try FileManager.default.removeItem(atPath: dir + "/p1/trial-003/report.json")
        let rerun = try loom(["tune", config, "--out", dir + "/p1"] + grid)
        #expect(
            rerun.stdout.contains("(3 already finished)") && rerun.stdout.contains("trial-003 finished"),
            "\(rerun.stdout)")
        #expect(!rerun.stdout.contains("trial-001 finished"))
        let after =
            try FileManager.default.attributesOfItem(atPath: dir + "/p1/trial-001/report.json")[.modificationDate]
            as! Date
        #expect(after == finished)
        #expect(FileManager.default.fileExists(atPath: dir + "/p1/tune.csv"))
        // The chart: the metric per trial, then against each swept key.
        let chart = try String(contentsOfFile: dir + "/p1/tune.svg", encoding: .utf8)
        for title in ["per trial", "against optimizer.learning_rate", "against model.layers.0.units"] {
            #expect(chart.contains("test_accuracy \(title)</text>"), "\(title)")
        }
        expectOneLineError(try loom(["tune", config, "--grid", "training.epochs=0"]), ["training.epochs"])
    }

    @Test("a config's sweep section is the sweep; loom train ignores it")
    func sweepSection() throws {
        let dir = temporaryFolder("loom-cli")
        writeGoodIDX(dir)
        let path = idxConfig(dir)
        let text =
            try String(contentsOfFile: path, encoding: .utf8)
            + "\nsweep:\n  grid:\n    optimizer.learning_rate: [0.1, 0.05]\n  sample:\n    model.layers.0.units: choice(4, 8)\n  samples: 2\n"
        try text.write(toFile: path, atomically: true, encoding: .utf8)
        let o = try loom(["tune", path, "--out", dir + "/s"])
        #expect(o.status == 0 && o.stdout.contains("Sweep of 4 trials"), "\(o.stdout) \(o.stderr)")
        #expect(try loom(["train", path, "--quiet"]).status == 0)
        let bad = text.replacingOccurrences(of: "[0.1, 0.05]", with: "0.1")
        try bad.write(toFile: path, atomically: true, encoding: .utf8)
        expectOneLineError(try loom(["tune", path]), ["sweep.grid.optimizer.learning_rate", "expected a list"])
    }
}
