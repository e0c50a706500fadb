// loom summary, topology, evaluate, predict: look at a model, the machine, or saved weights.
import ArgumentParser
import Foundation
import Loom

struct Summary: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Print the model a config describes, Keras-style.")
    @OptionGroup var options: ConfigOptions
    @Option(help: "Input features, when the config does not state model.input (default: the dataset's).") var input:
        Int?

    func run() throws {
        let config: RunConfig
        do { config = try options.load() } catch { fail(error) }
        print(config.makeModel(inputWidth: inputWidth(config, input)).summary())
    }
}

/// The model's input width: --input, the config's model.input, or the named dataset's.
func inputWidth(_ config: RunConfig, _ input: Int?) -> Int {
    if let input { return input }
    if let width = config.inputWidth { return width }
    switch config.data.dataset {
    case "xor": return 2
    case "fizzbuzz": return 10
    default: return 784
    }
}

struct Plan: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Print who computes which part of a training step for N workers: each product's cut and the barriers."
    )
    @OptionGroup var options: ConfigOptions
    @Option(parsing: .unconditional, help: "Workers to plan for (default: one per usable CPU).") var workers: Int?
    @Option(help: "Input features, when the config does not state model.input (default: the dataset's).")
    var input: Int?
    @Option(help: "Place the workers on a machine described by a sysfs-like folder (node/nodeN/cpulist …).")
    var sysfs: String?
    @Option(
        parsing: .unconditional,
        help: "Plan for this many MPI ranks, each with --workers threads (rank 0's plan; what mpirun -np R runs).")
    var ranks: Int = 1

    func run() throws {
        let config: RunConfig
        do { config = try options.load() } catch { fail(error) }
        let topology: Topology
        if let sysfs {
            do { topology = try Topology.fromSysfs(root: sysfs) } catch { fail(.topology(error)) }
        } else {
            topology = .detect()
        }
        let n = workers ?? topology.usableCPUs.count
        guard n >= 1 else { fail(.usage("--workers \(n): at least one worker is needed")) }
        guard n <= config.training.batchSize else {
            fail(.usage("--workers \(n) is more than the batch size \(config.training.batchSize)"))
        }
        guard ranks >= 1, n * ranks <= config.training.batchSize else {
            fail(
                .usage(
                    "--ranks \(ranks) × --workers \(n): need at least one rank, and at most \(config.training.batchSize) (the batch size) workers in all"
                ))
        }
        let model = config.makeModel(inputWidth: inputWidth(config, input))
        let plan = StepPlan(
            model: model, batchSize: config.training.batchSize, workers: n, policy: config.training.schedule,
            clipsByNorm: config.clipping.needsNorms, ranks: ranks)
        print(plan)
        let placements = topology.placement(workers: n)
        let nodes = Set(placements.map(\.node)).count
        let layout = NumaLayout(model: model, plan: plan, placements: placements)
        print(
            "NUMA: workers on \(nodes) node\(nodes == 1 ? "" : "s") (\(topology.source)); parameters, gradients and optimizer state on their owners' nodes; \(formatBytes(layout.crossingBytes)) cross nodes per step"
        )
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
        let world: Communicator
        do { world = try Communicator.world() } catch { fail(error) }
        guard world.isDistributed, sysfs == nil else {
            print(topology.describe(workers: workers ?? topology.usableCPUs.count))
            print("Kernels: \(kernelsLine())")
            return
        }
        // Under an MPI launcher: every rank's host, NUMA nodes and CPUs, printed by rank 0.
        let (mine, placements) = world.shareCPUs(topology)
        let usedNodes = mine.nodes.filter { !Set($0.cpus).isDisjoint(with: mine.usableCPUs) }.map(\.id)
        let summary = Array("NUMA node\(usedNodes.count == 1 ? "" : "s") \(compactList(usedNodes))".utf8.prefix(127))
        let nodes = world.allgather(summary + [UInt8](repeating: 0, count: 128 - summary.count)).map {
            String(decoding: $0.prefix { $0 != 0 }, as: UTF8.self)
        }
        if world.rank == 0 {
            print("MPI: \(world.size) ranks")
            for p in placements {
                print("  rank \(p.rank) → host \(p.host) → \(nodes[p.rank]) → CPUs \(compactList(p.cpus))")
            }
            print(mine.describe(workers: workers ?? mine.usableCPUs.count))
            print("Kernels: \(kernelsLine())")
        }
        world.finalize()
    }
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
            let (e, _, name) = try saved.evaluate(data: source, workers: workers)
            if let mae = e.meanAbsoluteError, let rmse = e.rootMeanSquaredError {
                print(
                    String(
                        format: "%@ on the %@ (%d samples): loss %.4f - mae %.4f - rmse %.4f", weights, name, e.count,
                        e.loss, mae, rmse))
                return
            }
            print(
                String(
                    format: "%@ on the %@ (%d samples): loss %.4f - accuracy %.4f", weights, name, e.count, e.loss,
                    e.accuracy))
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
        guard top >= 1 else { fail(.usage("--top \(top): show at least one class")) }
        guard limit >= 1 else { fail(.usage("--limit \(limit): show at least one image per file")) }
        do { try predict() } catch { fail(error) }
    }

    func predict() throws(LoomError) {
        do {
            let saved = try SavedModel(path: weights)
            var named: [(String, [Float])] = []
            for path in inputs {
                named += try readPredictionInputs(path, features: saved.inputWidth, scale: saved.config.data.scale)
                    .prefix(limit)
            }
            let probabilities = try saved.predict(named.map { saved.prepare($0.1) })
            if saved.config.metric == .meanAbsoluteError {  // regression: the predicted values themselves
                for ((name, _), y) in zip(named, probabilities) {
                    print(name + ": " + y.map { String(format: "%.6g", $0) }.joined(separator: ", "))
                }
                return
            }
            for ((name, _), p) in zip(named, probabilities) {
                let ranked = p.enumerated().sorted { $0.element > $1.element }.prefix(top)
                // Classes by name when the training data named them ("setosa 0 (0.97)").
                func label(_ c: Int) -> String {
                    saved.classNames.map { c < $0.count ? "\($0[c]) \(c)" : "\(c)" } ?? "\(c)"
                }
                print(
                    name + ": "
                        + ranked.map { String(format: "%@ (%.4f)", label($0.offset), $0.element) }.joined(
                            separator: ", "))
            }
        }
    }
}
