// ConfigLoader: YAML → RunConfig, walking Yams' node tree so every error can name the file, the line, the key
// path, what was expected, and — for a misspelt key — the key that was probably meant. `--set a.b=value`
// overrides are applied to the tree before validation, so they are checked exactly like the file.
import Foundation
import LoomData
import LoomKernels
import LoomNN
import Yams

/// A configuration the user must fix: one line, `file:line:column: key.path: problem`.
public struct ConfigError: Error, CustomStringConvertible, Equatable {
    /// The config file.
    public var file: String
    /// The line of the offending value, when known.
    public var line: Int?
    /// Its column, when known.
    public var column: Int?
    /// The dotted key of the offending value (`training.batch_size`).
    public var keyPath: String
    /// What is wrong and what to do.
    public var message: String

    /// An error at `keyPath` of `file`.
    public init(file: String, line: Int? = nil, column: Int? = nil, keyPath: String, message: String) {
        self.file = file
        self.line = line
        self.column = column
        self.keyPath = keyPath
        self.message = message
    }

    public var description: String {
        var s = file
        if let line { s += ":\(line)" + (column.map { ":\($0)" } ?? "") }
        s += ": "
        if !keyPath.isEmpty { s += keyPath + ": " }
        return s + message
    }
}

/// Loads and validates run configurations.
public enum ConfigLoader {
    /// Reads `path`, applies `overrides` ("key.path=value"), and validates everything.
    public static func load(path: String, overrides: [String] = []) throws(ConfigError) -> RunConfig {
        guard FileManager.default.fileExists(atPath: path) else {
            throw ConfigError(
                file: path, keyPath: "", message: "no such config file (the shipped ones are in configs/)")
        }
        if let kind = FileKind.of(path), kind != .yamlConfig && kind != .text {
            let hint =
                kind == .safetensors
                ? "evaluate it with loom evaluate \(path), or start training from it with --init-weights \(path)"
                : "a config is a YAML file such as configs/mnist.yaml"
            throw ConfigError(file: path, keyPath: "", message: "is \(kind.rawValue), not a YAML config; \(hint)")
        }
        guard let data = FileManager.default.contents(atPath: path), let text = String(data: data, encoding: .utf8)
        else {
            throw ConfigError(file: path, keyPath: "", message: "cannot read the file as UTF-8 text")
        }
        let folder = (path as NSString).deletingLastPathComponent
        return try parse(text, file: path, overrides: overrides, baseDirectory: folder.isEmpty ? "." : folder)
    }

    /// Parses YAML text (named `file` in messages).
    /// Relative data paths written in the text are resolved against `baseDirectory` (a config file's folder);
    /// without one, and for `--set` values, they stay relative to the working folder.
    public static func parse(
        _ text: String, file: String, overrides: [String] = [], baseDirectory: String? = nil
    ) throws(ConfigError) -> RunConfig {
        var root: Node
        do {
            guard let node = try Yams.compose(yaml: text) else {
                throw ConfigError(
                    file: file, keyPath: "",
                    message: "the file is empty; a config needs model, loss, optimizer, data and training")
            }
            root = node
        } catch let e as ConfigError {
            throw e
        } catch let e as YamlError {
            throw yamlSyntaxError(e, file: file)
        } catch {
            throw ConfigError(file: file, keyPath: "", message: "YAML syntax error: \(error)")
        }
        for o in overrides { root = try applyOverride(o, to: root, file: file) }
        return try Reader(file: file, baseDirectory: baseDirectory).runConfig(root)
    }

    static func yamlSyntaxError(_ e: YamlError, file: String) -> ConfigError {
        switch e {
        case .scanner(let context, let problem, let mark, _), .parser(let context, let problem, let mark, _),
            .composer(let context, let problem, let mark, _):
            let ctx = context.map { "\($0.text) " } ?? ""
            return ConfigError(
                file: file, line: mark.line, column: mark.column, keyPath: "",
                message: "YAML syntax error: \(ctx)\(problem)")
        case .duplicatedKeysInMapping(let duplicates, _):
            return ConfigError(
                file: file, keyPath: "", message: "duplicated key(s) \(duplicates.sorted().joined(separator: ", "))")
        default:
            return ConfigError(
                file: file, keyPath: "",
                message: "YAML syntax error: \(String(describing: e).split(separator: "\n").first ?? "")")
        }
    }

    /// Sets `key.path=value` in the tree (sequence elements by index), creating mapping keys as needed; the
    /// value is read as a YAML scalar or flow collection.
    static func applyOverride(_ assignment: String, to root: Node, file: String) throws(ConfigError) -> Node {
        guard let eq = assignment.firstIndex(of: "="), eq != assignment.startIndex else {
            throw ConfigError(
                file: "--set", keyPath: "",
                message: "'\(assignment)' is not of the form key.path=value (e.g. training.epochs=3)")
        }
        let keyPath = String(assignment[..<eq])
        let valueText = String(assignment[assignment.index(after: eq)...])
        var value: Node
        do { value = try Yams.compose(yaml: valueText) ?? Node("") } catch {
            throw ConfigError(file: "--set", keyPath: keyPath, message: "cannot read value '\(valueText)' as YAML")
        }
        value = unmarked(value)
        let parts = keyPath.split(separator: ".", omittingEmptySubsequences: false).map(String.init)
        guard !parts.contains("") else {
            throw ConfigError(file: "--set", keyPath: keyPath, message: "empty key in path")
        }
        return try set(parts[...], value, in: root, done: [], keyPath: keyPath)
    }

    /// The node without source positions, so errors in it point at --set rather than at line 1 of the file.
    static func unmarked(_ node: Node) -> Node {
        switch node {
        case .scalar(var s):
            s.mark = nil
            return .scalar(s)
        case .sequence(let s): return .sequence(Node.Sequence(s.map(unmarked)))
        case .mapping(let m): return .mapping(Node.Mapping(m.map { (unmarked($0.key), unmarked($0.value)) }))
        case .alias: return node
        }
    }

    static func set(
        _ parts: ArraySlice<String>, _ value: Node, in node: Node, done: [String],
        keyPath: String
    ) throws(ConfigError) -> Node {
        guard let key = parts.first else { return value }
        let here = (done + [key]).joined(separator: ".")
        switch node {
        case .mapping(var m):
            let child = m[key] ?? .mapping(Node.Mapping([]))
            m[key] = try set(parts.dropFirst(), value, in: child, done: done + [key], keyPath: keyPath)
            return .mapping(m)
        case .sequence(var s):
            guard let i = Int(key), i >= 0, i < s.count else {
                throw ConfigError(
                    file: "--set", keyPath: here,
                    message:
                        "\(done.joined(separator: ".")) is a list of \(s.count); use an index 0...\(max(0, s.count - 1))"
                )
            }
            s[i] = try set(parts.dropFirst(), value, in: s[i], done: done + [key], keyPath: keyPath)
            return .sequence(s)
        default:
            throw ConfigError(
                file: "--set", keyPath: here,
                message: "\(done.joined(separator: ".")) is a single value, it has no key '\(key)'")
        }
    }
}

/// Walks the tree with the current key path, turning each problem into a located ConfigError.
struct Reader {
    let file: String
    /// The config file's folder, for relative data paths written in it.
    var baseDirectory: String?

    func fail(_ node: Node?, _ path: String, _ message: String) -> ConfigError {
        ConfigError(
            file: node?.mark == nil ? "--set" : file, line: node?.mark?.line,
            column: node?.mark?.column, keyPath: path, message: message)
    }

    /// The mapping at `path`, checked for unknown keys (any key when `allowed` is nil).
    func mapping(_ node: Node, _ path: String, allowed: [String]?) throws(ConfigError) -> [String: Node] {
        guard case .mapping(let m) = node else {
            let keys = allowed.map { " with keys \($0.joined(separator: ", "))" } ?? ""
            throw fail(node, path, "expected a mapping\(keys), found \(describe(node))")
        }
        var result: [String: Node] = [:]
        for (k, v) in m {
            guard let key = k.string else { throw fail(k, path, "keys must be strings") }
            guard let allowed else {
                result[key] = v
                continue
            }
            guard allowed.contains(key) else {
                let full = path.isEmpty ? key : path + "." + key
                throw fail(
                    k, full,
                    "unknown key" + didYouMean(key, allowed) + " (valid keys: \(allowed.joined(separator: ", ")))")
            }
            result[key] = v
        }
        return result
    }

    func required(_ m: [String: Node], _ key: String, _ path: String, parent: Node) throws(ConfigError) -> Node {
        guard let v = m[key] else { throw fail(parent, join(path, key), "missing (required)") }
        return v
    }

    func int(_ node: Node, _ path: String, min lo: Int, max hi: Int = Int.max, what: String = "an integer")
        throws(ConfigError) -> Int
    {
        guard case .scalar(let s) = node, let v = Int(s.string.trimmingCharacters(in: .whitespaces)) else {
            throw fail(node, path, "expected \(what), found \(describe(node))")
        }
        guard v >= lo && v <= hi else {
            let range = hi == Int.max ? "≥ \(lo)" : "in \(lo)...\(hi)"
            throw fail(node, path, "expected \(what) \(range), found \(v)")
        }
        return v
    }

    func number(_ node: Node, _ path: String, _ valid: (Double) -> Bool, _ expected: String) throws(ConfigError)
        -> Double
    {
        guard case .scalar(let s) = node, let v = Double(s.string.trimmingCharacters(in: .whitespaces)) else {
            throw fail(node, path, "expected a number (\(expected)), found \(describe(node))")
        }
        guard v.isFinite && valid(v) else { throw fail(node, path, "expected \(expected), found \(s.string)") }
        return v
    }

    func bool(_ node: Node, _ path: String) throws(ConfigError) -> Bool {
        guard case .scalar = node, let b = node.bool else {
            throw fail(node, path, "expected true or false, found \(describe(node))")
        }
        return b
    }

    func name(_ node: Node, _ path: String, from names: [String], what: String) throws(ConfigError) -> String {
        guard case .scalar(let s) = node, !s.string.isEmpty else {
            throw fail(
                node, path, "expected \(what) (one of \(names.joined(separator: ", "))), found \(describe(node))")
        }
        guard names.contains(s.string) else {
            throw fail(
                node, path,
                "unknown \(what) '\(s.string)'" + didYouMean(s.string, names)
                    + " (valid: \(names.joined(separator: ", ")))")
        }
        return s.string
    }

    // MARK: Sections

    /// `loss: name`, or `loss: {name: …, from_logits: true, delta: 1.0}` (delta: huber only).
    func loss(_ node: Node) throws(ConfigError) -> (Loss, LossOptions) {
        let names = Loss.allCases.map(\.rawValue)
        guard case .mapping = node else {
            return (Loss(rawValue: try name(node, "loss", from: names, what: "loss"))!, LossOptions())
        }
        let m = try mapping(node, "loss", allowed: ["name", "from_logits", "delta"])
        let loss = Loss(
            rawValue: try name(required(m, "name", "loss", parent: node), "loss.name", from: names, what: "loss"))!
        var options = LossOptions()
        if let n = m["from_logits"] {
            guard loss.fusesOutput else {
                throw fail(n, "loss.from_logits", "applies to the cross-entropy losses only, not \(loss.rawValue)")
            }
            options.fromLogits = try bool(n, "loss.from_logits")
        }
        if let n = m["delta"] {
            guard loss == .huber else { throw fail(n, "loss.delta", "applies to huber only, not \(loss.rawValue)") }
            options.delta = Float(try number(n, "loss.delta", { $0 > 0 && $0.isFinite }, "a positive number"))
        }
        return (loss, options)
    }

    func runConfig(_ root: Node) throws(ConfigError) -> RunConfig {
        let top = try mapping(
            root, "", allowed: ["model", "loss", "optimizer", "data", "training", "checkpoint", "callbacks", "sweep"])
        let modelNode = try required(top, "model", "", parent: root)
        let model = try mapping(modelNode, "model", allowed: ["input", "layers"])
        let layersNode = try required(model, "layers", "model", parent: modelNode)
        guard case .sequence(let seq) = layersNode, !seq.isEmpty else {
            throw fail(layersNode, "model.layers", "expected a non-empty list of layers, found \(describe(layersNode))")
        }
        var layers: [LayerConfig] = []
        for (i, n) in seq.enumerated() { layers.append(try layer(n, "model.layers.\(i)")) }
        let input = try model["input"].map { n throws(ConfigError) in
            try int(n, "model.input", min: 1, what: "a positive integer")
        }
        let lossNode = try required(top, "loss", "", parent: root)
        let (loss, lossOptions) = try loss(lossNode)
        // The loss must be defined for the model's output, or nothing past this point may size a buffer from it.
        let output = OutputDescription(layers: layers.map(\.shape), inputWidth: input)
        if let refusal = loss.refusal(for: output, options: lossOptions) {
            throw fail(lossNode, "loss", refusal)
        }
        let optimizerNode = try required(top, "optimizer", "", parent: root)
        let optimizer = try optimizer(optimizerNode)
        let schedule = try schedule(optimizerNode)
        var data = try data(required(top, "data", "", parent: root))
        if data.targetsKind == nil, loss.isRegression, ["arrays", "idx", "csv"].contains(data.dataset) {
            data.valueTargets = true  // a regression loss reads the targets as real values
        }
        let training = try training(top["training"] ?? .mapping(Node.Mapping([])))
        if training.classWeight != nil, data.valueTargets {
            throw fail(
                top["training"]!, "training.class_weight",
                "weighs classes, but the targets are real values (regression); use a sample weight column instead")
        }
        var config = RunConfig(
            layers: layers, inputWidth: input, loss: loss, optimizer: optimizer, data: data,
            training: training, source: file)
        config.lossOptions = lossOptions
        config.schedule = schedule
        if case .mapping(let raw) = optimizerNode {
            if let n = raw["weight_decay"] {
                config.weightDecay = try number(
                    n, "optimizer.weight_decay", { $0 >= 0 && $0 < 1 }, "a weight decay in [0, 1)")
            } else if optimizer.name == "adamw" {
                config.weightDecay = 0.004
            }
            config.clipping = try clipping(raw)
        } else if optimizer.name == "adamw" {
            config.weightDecay = 0.004
        }
        if let node = top["checkpoint"] { config.checkpoint = try checkpoint(node) }
        if let node = top["sweep"] { config.sweep = try sweep(node) }
        if let node = top["callbacks"] {
            guard case .sequence(let seq) = node else {
                throw fail(node, "callbacks", "expected a list of callbacks, found \(describe(node))")
            }
            for (i, n) in seq.enumerated() {
                if let c = try callback(n, "callbacks.\(i)", config: &config) { config.callbacks.append(c) }
            }
        }
        return config
    }

    /// Keras' regularizers: `l1`, `l2`, `l1_l2` (factor 0.01), or a mapping `{l1: a, l2: b}`.
    func regularizer(_ node: Node, _ path: String) throws(ConfigError) -> Regularizer {
        let names = ["l1", "l2", "l1_l2"]
        if case .scalar = node {
            let kind = try name(node, path, from: names, what: "regularizer")
            return Regularizer(l1: kind == "l2" ? 0 : 0.01, l2: kind == "l1" ? 0 : 0.01)
        }
        let m = try mapping(node, path, allowed: ["l1", "l2"])
        func factor(_ key: String) throws(ConfigError) -> Float {
            try m[key].map { n throws(ConfigError) in
                Float(try number(n, join(path, key), { $0 >= 0 && $0.isFinite }, "a factor ≥ 0"))
            } ?? 0
        }
        let r = Regularizer(l1: try factor("l1"), l2: try factor("l2"))
        guard r.l1 > 0 || r.l2 > 0 else {
            throw fail(node, path, "expected l1 and/or l2 factors above 0, e.g. {l2: 0.0001}")
        }
        return r
    }

    /// The optimizer's gradient clipping: at most one of clipvalue, clipnorm, global_clipnorm (as in Keras).
    func clipping(_ raw: Node.Mapping) throws(ConfigError) -> GradientClipping {
        let keys = ["clipvalue", "clipnorm", "global_clipnorm"].filter { raw[$0] != nil }
        guard let key = keys.first else { return .none }
        if keys.count > 1 {
            throw fail(
                raw[keys[1]]!, "optimizer.\(keys[1])",
                "set only one of \(keys.joined(separator: ", ")) (Keras accepts one clipping mode)")
        }
        let c = Float(try number(raw[key]!, "optimizer.\(key)", { $0 > 0 && $0.isFinite }, "a positive number"))
        switch key {
        case "clipvalue": return .value(c)
        case "clipnorm": return .norm(c)
        default: return .globalNorm(c)
        }
    }

    func layer(_ node: Node, _ path: String) throws(ConfigError) -> LayerConfig {
        let types = ["dense", "activation", "dropout"]
        guard case .mapping(let raw) = node, let typeNode = raw["type"] else {
            throw fail(node, path, "expected a layer: a mapping with 'type' (one of \(types.joined(separator: ", ")))")
        }
        let type = try name(typeNode, join(path, "type"), from: types, what: "layer type")
        let activations = ActivationKind.allCases.map(\.rawValue)
        switch type {
        case "dense":
            let m = try mapping(
                node, path,
                allowed: [
                    "type", "units", "activation", "kernel_initializer", "bias_initializer", "kernel_regularizer",
                    "bias_regularizer",
                ])
            let units = try int(
                required(m, "units", path, parent: node), join(path, "units"), min: 1, max: 1 << 20,
                what: "a positive number of units")
            let act =
                try m["activation"].map { n throws(ConfigError) in
                    try ActivationKind(
                        rawValue: name(n, join(path, "activation"), from: activations, what: "activation"))!
                } ?? .linear
            let k =
                try m["kernel_initializer"].map { n throws(ConfigError) in
                    try initializer(n, join(path, "kernel_initializer"))
                } ?? .glorotUniform
            let b =
                try m["bias_initializer"].map { n throws(ConfigError) in
                    try initializer(n, join(path, "bias_initializer"))
                } ?? .zeros
            let kr = try m["kernel_regularizer"].map { n throws(ConfigError) in
                try regularizer(n, join(path, "kernel_regularizer"))
            }
            let br = try m["bias_regularizer"].map { n throws(ConfigError) in
                try regularizer(n, join(path, "bias_regularizer"))
            }
            return .dense(
                units: units, activation: act, kernelInitializer: k, biasInitializer: b, kernelRegularizer: kr,
                biasRegularizer: br)
        case "activation":
            let m = try mapping(node, path, allowed: ["type", "activation"])
            return .activation(
                try ActivationKind(
                    rawValue: name(
                        required(m, "activation", path, parent: node),
                        join(path, "activation"), from: activations, what: "activation"))!)
        default:
            let m = try mapping(node, path, allowed: ["type", "rate"])
            return .dropout(
                rate: try number(
                    required(m, "rate", path, parent: node), join(path, "rate"),
                    { $0 >= 0 && $0 < 1 }, "a rate in [0, 1)"))
        }
    }

    func initializer(_ node: Node, _ path: String) throws(ConfigError) -> Initializer {
        var params: [String: Node] = [:]
        let kind: String
        if case .mapping = node {
            params = try mapping(node, path, allowed: ["name", "mean", "stddev", "min", "max"])
            kind = try name(
                required(params, "name", path, parent: node), join(path, "name"), from: Initializer.names,
                what: "initializer")
        } else {
            kind = try name(node, path, from: Initializer.names, what: "initializer")
        }
        func param(
            _ key: String, _ def: Double, _ valid: (Double) -> Bool = { _ in true }, _ expected: String = "a number"
        ) throws(ConfigError) -> Double {
            try params[key].map { n throws(ConfigError) in try number(n, join(path, key), valid, expected) } ?? def
        }
        switch kind {
        case "glorot_uniform": return .glorotUniform
        case "glorot_normal", "xavier": return .glorotNormal
        case "he_uniform": return .heUniform
        case "he_normal": return .heNormal
        case "lecun_normal": return .lecunNormal
        case "random_normal":
            return .randomNormal(
                mean: try param("mean", 0), stddev: try param("stddev", 0.05, { $0 > 0 }, "a positive stddev"))
        case "random_uniform":
            let lo = try param("min", -0.05)
            let hi = try param("max", 0.05)
            guard lo < hi else { throw fail(node, path, "random_uniform needs min < max, found min \(lo), max \(hi)") }
            return .randomUniform(min: lo, max: hi)
        case "zeros": return .zeros
        default: return .ones
        }
    }

    func optimizer(_ node: Node) throws(ConfigError) -> OptimizerSpec {
        let path = "optimizer"
        let kindNode: Node
        var kindPath = join(path, "name")
        if case .mapping(let raw) = node, let n = raw["name"] {
            kindNode = n
        } else if case .scalar = node {
            kindNode = node
            kindPath = path
        } else {
            throw fail(
                node, path,
                "expected an optimizer: a name (\(OptimizerSpec.names.joined(separator: ", "))) or a mapping with 'name'"
            )
        }
        let kind = try name(kindNode, kindPath, from: OptimizerSpec.names, what: "optimizer")
        let baseKeys: [String] =
            switch kind {
            case "sgd": ["name", "learning_rate", "momentum", "nesterov", "schedule"]
            case "rmsprop": ["name", "learning_rate", "rho", "epsilon", "momentum", "centered", "schedule"]
            default: ["name", "learning_rate", "beta_1", "beta_2", "epsilon", "schedule"]
            }
        let keys = baseKeys + ["weight_decay", "clipvalue", "clipnorm", "global_clipnorm"]
        let m: [String: Node] = if case .mapping = node { try mapping(node, path, allowed: keys) } else { [:] }
        func f(_ key: String, _ def: Float, _ valid: (Double) -> Bool, _ expected: String) throws(ConfigError) -> Float
        {
            try m[key].map { n throws(ConfigError) in Float(try number(n, join(path, key), valid, expected)) } ?? def
        }
        func b(_ key: String) throws(ConfigError) -> Bool {
            try m[key].map { n throws(ConfigError) in try bool(n, join(path, key)) } ?? false
        }
        let positive: (Double) -> Bool = { $0 > 0 }
        let unit: (Double) -> Bool = { $0 >= 0 && $0 < 1 }
        switch kind {
        case "sgd":
            return .sgd(
                learningRate: try f("learning_rate", 0.01, positive, "a positive learning rate"),
                momentum: try f("momentum", 0, unit, "a momentum in [0, 1)"), nesterov: try b("nesterov"))
        case "rmsprop":
            return .rmsprop(
                learningRate: try f("learning_rate", 0.001, positive, "a positive learning rate"),
                rho: try f("rho", 0.9, unit, "rho in [0, 1)"),
                epsilon: try f("epsilon", 1e-7, positive, "a positive epsilon"),
                momentum: try f("momentum", 0, unit, "a momentum in [0, 1)"), centered: try b("centered"))
        default:
            let (lr, b1, b2, eps) = (
                try f("learning_rate", 0.001, positive, "a positive learning rate"),
                try f("beta_1", 0.9, unit, "beta_1 in [0, 1)"), try f("beta_2", 0.999, unit, "beta_2 in [0, 1)"),
                try f("epsilon", 1e-7, positive, "a positive epsilon")
            )
            return kind == "adamw"
                ? .adamw(learningRate: lr, beta1: b1, beta2: b2, epsilon: eps)
                : .adam(learningRate: lr, beta1: b1, beta2: b2, epsilon: eps)
        }
    }

    /// `optimizer.schedule`: a name, or a mapping with `name` and the schedule's parameters (Keras' names).
    func schedule(_ optimizerNode: Node) throws(ConfigError) -> LearningRateSchedule {
        guard case .mapping(let raw) = optimizerNode, let node = raw["schedule"] else { return .constant }
        let path = "optimizer.schedule"
        let kindNode: Node
        var params: [String: Node] = [:]
        let allowed = [
            "name", "decay_steps", "decay_rate", "staircase", "end_learning_rate", "power", "cycle", "alpha",
            "warmup_steps", "warmup_target", "boundaries", "values",
        ]
        if case .mapping = node {
            params = try mapping(node, path, allowed: allowed)
            kindNode = try required(params, "name", path, parent: node)
        } else {
            kindNode = node
        }
        let kind = try name(
            kindNode, params.isEmpty ? path : join(path, "name"), from: LearningRateSchedule.names, what: "schedule")
        func steps() throws(ConfigError) -> Int {
            try int(
                required(params, "decay_steps", path, parent: node), join(path, "decay_steps"), min: 1,
                what: "a positive number of steps")
        }
        func real(_ key: String, _ def: Double, _ valid: (Double) -> Bool, _ expected: String) throws(ConfigError)
            -> Double
        {
            try params[key].map { n throws(ConfigError) in try number(n, join(path, key), valid, expected) } ?? def
        }
        func flag(_ key: String) throws(ConfigError) -> Bool {
            try params[key].map { n throws(ConfigError) in try bool(n, join(path, key)) } ?? false
        }
        switch kind {
        case "exponential_decay", "inverse_time_decay":
            let decaySteps = try steps()
            let rate = try real("decay_rate", .nan, { $0 > 0 }, "a positive decay rate")
            guard !rate.isNaN else { throw fail(node, join(path, "decay_rate"), "missing (required)") }
            let staircase = try flag("staircase")
            return kind == "exponential_decay"
                ? .exponentialDecay(decaySteps: decaySteps, decayRate: rate, staircase: staircase)
                : .inverseTimeDecay(decaySteps: decaySteps, decayRate: rate, staircase: staircase)
        case "polynomial_decay":
            return .polynomialDecay(
                decaySteps: try steps(),
                endLearningRate: try real("end_learning_rate", 0.0001, { $0 >= 0 }, "a learning rate ≥ 0"),
                power: try real("power", 1, { $0 > 0 }, "a positive power"), cycle: try flag("cycle"))
        case "cosine_decay":
            let warmup = try params["warmup_steps"].map { n throws(ConfigError) in
                try int(n, join(path, "warmup_steps"), min: 0, what: "a number of steps")
            }
            let target = try params["warmup_target"].map { n throws(ConfigError) in
                try number(n, join(path, "warmup_target"), { $0 > 0 }, "a positive learning rate")
            }
            return .cosineDecay(
                decaySteps: try steps(), alpha: try real("alpha", 0, { $0 >= 0 && $0 <= 1 }, "alpha in [0, 1]"),
                warmupSteps: warmup ?? 0, warmupTarget: target)
        case "piecewise_constant":
            func list(_ key: String) throws(ConfigError) -> [Node] {
                let n = try required(params, key, path, parent: node)
                guard case .sequence(let seq) = n else {
                    throw fail(n, join(path, key), "expected a list, found \(describe(n))")
                }
                return Array(seq)
            }
            var boundaries: [Int] = []
            for (i, n) in try list("boundaries").enumerated() {
                boundaries.append(
                    try int(
                        n, join(path, "boundaries.\(i)"), min: (boundaries.last ?? -1) + 1, what: "an increasing step"))
            }
            var values: [Double] = []
            for (i, n) in try list("values").enumerated() {
                values.append(try number(n, join(path, "values.\(i)"), { $0 > 0 }, "a positive learning rate"))
            }
            guard !boundaries.isEmpty, values.count == boundaries.count + 1 else {
                throw fail(
                    node, join(path, "values"),
                    "needs one more value than boundaries (\(boundaries.count) boundaries, \(values.count) values)")
            }
            return .piecewiseConstant(boundaries: boundaries, values: values)
        default:
            return .constant
        }
    }

    /// One entry of `callbacks` (nil for terminate_on_nan, which sets training.on_nan).
    func callback(_ node: Node, _ path: String, config: inout RunConfig) throws(ConfigError) -> CallbackConfig? {
        guard case .mapping(let raw) = node, let nameNode = raw["name"] else {
            if case .scalar = node, node.string == "terminate_on_nan" {
                config.training.onNaN = .stop
                return nil
            }
            throw fail(
                node, path,
                "expected a callback: a mapping with 'name' (one of \(CallbackConfig.names.joined(separator: ", ")))")
        }
        let kind = try name(nameNode, join(path, "name"), from: CallbackConfig.names, what: "callback")
        let keys: [String] =
            switch kind {
            case "early_stopping": ["name", "monitor", "min_delta", "patience", "mode", "restore_best_weights"]
            case "reduce_lr_on_plateau":
                ["name", "monitor", "factor", "patience", "min_delta", "cooldown", "min_lr", "mode"]
            case "model_checkpoint": ["name", "filepath", "monitor", "save_best_only", "mode"]
            default: ["name"]
            }
        let m = try mapping(node, path, allowed: keys)
        func text(_ key: String, _ def: String, from names: [String], what: String) throws(ConfigError) -> String {
            try m[key].map { n throws(ConfigError) in try name(n, join(path, key), from: names, what: what) } ?? def
        }
        func real(_ key: String, _ def: Double, _ valid: (Double) -> Bool, _ expected: String) throws(ConfigError)
            -> Double
        {
            try m[key].map { n throws(ConfigError) in try number(n, join(path, key), valid, expected) } ?? def
        }
        func count(_ key: String, _ def: Int) throws(ConfigError) -> Int {
            try m[key].map { n throws(ConfigError) in try int(n, join(path, key), min: 0, what: "a number of epochs") }
                ?? def
        }
        func flag(_ key: String) throws(ConfigError) -> Bool {
            try m[key].map { n throws(ConfigError) in try bool(n, join(path, key)) } ?? false
        }
        let monitor = try text("monitor", "val_loss", from: CallbackConfig.monitors, what: "metric")
        if monitor.hasPrefix("val_") && config.training.validationSplit == 0 {
            throw fail(
                m["monitor"] ?? node, join(path, "monitor"),
                "\(monitor) needs validation data; set training.validation_split (e.g. 0.1), or monitor \(monitor.dropFirst(4))"
            )
        }
        let mode = try text("mode", "auto", from: ["auto", "min", "max"], what: "mode")
        switch kind {
        case "early_stopping":
            return .earlyStopping(
                monitor: monitor, minDelta: try real("min_delta", 0, { $0 >= 0 }, "a change ≥ 0"),
                patience: try count("patience", 0), mode: mode, restoreBestWeights: try flag("restore_best_weights"))
        case "reduce_lr_on_plateau":
            if config.schedule != .constant {
                throw fail(
                    node, path,
                    "reduce_lr_on_plateau changes the learning rate itself; drop optimizer.schedule or this callback")
            }
            return .reduceLROnPlateau(
                monitor: monitor, factor: try real("factor", 0.1, { $0 > 0 && $0 < 1 }, "a factor in (0, 1)"),
                patience: try count("patience", 10),
                minDelta: try real("min_delta", 0.0001, { $0 >= 0 }, "a change ≥ 0"),
                cooldown: try count("cooldown", 0), minLR: try real("min_lr", 0, { $0 >= 0 }, "a learning rate ≥ 0"),
                mode: mode)
        case "model_checkpoint":
            let fileNode = try required(m, "filepath", path, parent: node)
            guard case .scalar(let v) = fileNode, !v.string.isEmpty else {
                throw fail(fileNode, join(path, "filepath"), "expected a file path, found \(describe(fileNode))")
            }
            return .modelCheckpoint(
                filepath: v.string, monitor: monitor, saveBestOnly: try flag("save_best_only"), mode: mode)
        default:
            config.training.onNaN = .stop
            return nil
        }
    }

    /// The `sweep` section `loom tune` reads (a plain `loom train` ignores it): `grid` maps keys to lists of
    /// values, `sample` maps keys to distributions, with `samples` draws and `sample_seed`.
    func sweep(_ node: Node) throws(ConfigError) -> SweepConfig {
        let path = "sweep"
        let m = try mapping(node, path, allowed: ["grid", "sample", "samples", "sample_seed"])
        var sweep = SweepConfig()
        if let n = m["grid"] {
            for (key, values) in try mapping(n, join(path, "grid"), allowed: nil).sorted(by: { $0.key < $1.key }) {
                guard case .sequence(let seq) = values, !seq.isEmpty else {
                    throw fail(
                        values, join(path, "grid.\(key)"), "expected a list of values, found \(describe(values))")
                }
                var texts: [String] = []
                for v in seq {
                    guard case .scalar(let s) = v else {
                        throw fail(v, join(path, "grid.\(key)"), "expected single values, found \(describe(v))")
                    }
                    texts.append(s.string)
                }
                sweep.grid.append("\(key)=\(texts.joined(separator: ","))")
            }
        }
        if let n = m["sample"] {
            for (key, value) in try mapping(n, join(path, "sample"), allowed: nil).sorted(by: { $0.key < $1.key }) {
                guard case .scalar(let s) = value else {
                    throw fail(
                        value, join(path, "sample.\(key)"), "expected a distribution such as loguniform(1e-4, 1e-2)")
                }
                sweep.sample.append("\(key)=\(s.string)")
            }
        }
        if let n = m["samples"] { sweep.samples = try int(n, join(path, "samples"), min: 1, what: "a number of draws") }
        if let n = m["sample_seed"] { sweep.sampleSeed = try int(n, join(path, "sample_seed"), min: 0, what: "a seed") }
        return sweep
    }

    func data(_ node: Node) throws(ConfigError) -> DataSource {
        let path = "data"
        let m = try mapping(
            node, path,
            allowed: [
                "dataset", "path", "train_images", "train_labels", "test_images", "test_labels", "train_x", "train_y",
                "test_x", "test_y", "train", "test", "test_split", "target", "features", "header", "skip_rows",
                "delimiter", "scale", "standardize", "validation", "validation_x", "validation_y", "targets",
                "sample_weight",
            ])
        let dataset = try name(
            required(m, "dataset", path, parent: node), join(path, "dataset"), from: DataSource.known, what: "dataset")
        func s(_ key: String) throws(ConfigError) -> String? {
            guard let n = m[key] else { return nil }
            guard case .scalar(let v) = n, !v.string.isEmpty else {
                throw fail(n, join(path, key), "expected a file path, found \(describe(n))")
            }
            // A path written in the file is relative to the file (as Hydra, Lightning and Keras users expect);
            // one given with --set (no source mark) is relative to the working folder, as typed in a shell.
            guard let base = baseDirectory, n.mark != nil, !v.string.hasPrefix("/") else { return v.string }
            return shortPath(URL(fileURLWithPath: base).appendingPathComponent(v.string).standardizedFileURL.path)
        }
        // train_x / train_y / test_x / test_y: the same files under the names array users know.
        func either(_ a: String, _ b: String) throws(ConfigError) -> String? {
            if let v = try s(a) { return v }
            return try s(b)
        }
        var source = DataSource(
            dataset: dataset, path: try s("path"), trainImages: try either("train_images", "train_x"),
            trainLabels: try either("train_labels", "train_y"), testImages: try either("test_images", "test_x"),
            testLabels: try either("test_labels", "test_y"),
            searchRoots: baseDirectory.map { DataSource.ancestors(of: $0) } ?? [])
        try csv(m, path, into: &source, file: s)
        source.validationX = try either("validation_x", "validation")
        source.validationY = try s("validation_y")
        if source.validationX != nil || source.validationY != nil {
            guard ["arrays", "idx", "csv"].contains(dataset) else {
                throw fail(
                    m["validation_x"] ?? m["validation"] ?? m["validation_y"]!, join(path, "validation"),
                    "applies to datasets arrays, idx and csv; use training.validation_split for \(dataset)")
            }
        }
        if let n = m["targets"] {
            let kind = try name(n, join(path, "targets"), from: ["classes", "values"], what: "kind of targets")
            guard ["arrays", "idx", "csv"].contains(dataset) else {
                throw fail(n, join(path, "targets"), "applies to datasets arrays, idx and csv")
            }
            source.targetsKind = kind
            source.valueTargets = kind == "values"
        }
        if let n = m["standardize"] {
            guard ["arrays", "idx", "csv"].contains(dataset) else {
                throw fail(n, join(path, "standardize"), "applies to datasets arrays, idx and csv")
            }
            source.standardize = try bool(n, join(path, "standardize"))
        }
        if let n = m["scale"] {
            guard ["arrays", "idx", "csv"].contains(dataset) else {
                throw fail(
                    n, join(path, "scale"), "applies to datasets arrays, idx and csv (\(dataset) is scaled already)")
            }
            source.scale = try number(
                n, join(path, "scale"), { $0 > 0 && $0.isFinite }, "a positive factor, e.g. 0.00392156862745098 (1/255)"
            )
        }
        return source
    }

    /// The CSV keys of the data section: train, test, test_split, target, features, header, skip_rows, delimiter.
    func csv(
        _ m: [String: Node], _ path: String, into source: inout DataSource,
        file: (String) throws(ConfigError) -> String?
    ) throws(ConfigError) {
        let keys = [
            "train", "test", "test_split", "target", "features", "header", "skip_rows", "delimiter", "sample_weight",
        ]
        if source.dataset != "csv" {
            if let key = keys.first(where: { m[$0] != nil }) {
                throw fail(
                    m[key]!, join(path, key), "is a key of dataset csv only (this data section reads \(source.dataset))"
                )
            }
            return
        }
        if let train = try file("train") { source.trainImages = train }
        if let test = try file("test") { source.testImages = test }
        if let n = m["test_split"] {
            source.testSplit = try number(n, join(path, "test_split"), { $0 > 0 && $0 < 1 }, "a fraction in (0, 1)")
        }
        func text(_ n: Node, _ key: String) throws(ConfigError) -> String {
            guard case .scalar(let v) = n, !v.string.isEmpty else {
                throw fail(n, join(path, key), "expected a column name or index, found \(describe(n))")
            }
            return v.string
        }
        if let n = m["target"] {
            if case .sequence(let items) = n {
                guard !items.isEmpty else { throw fail(n, join(path, "target"), "expected at least one column") }
                var names: [String] = []
                for item in items { names.append(try text(item, "target")) }
                source.csv.targets = names
            } else {
                source.csv.target = try text(n, "target")
            }
        }
        if let n = m["sample_weight"] { source.csv.weight = try text(n, "sample_weight") }
        if let n = m["features"] {
            guard case .sequence(let items) = n, !items.isEmpty else {
                throw fail(
                    n, join(path, "features"), "expected a list of column names or indices, found \(describe(n))")
            }
            var names: [String] = []
            for item in items { names.append(try text(item, "features")) }
            source.csv.features = names
        }
        if let n = m["header"] { source.csv.header = try bool(n, join(path, "header")) }
        if let n = m["skip_rows"] {
            source.csv.skipRows = try int(n, join(path, "skip_rows"), min: 0, what: "a line count")
        }
        if let n = m["delimiter"] {
            let v = try text(n, "delimiter")
            let named: [String: UInt8] = [",": 44, ";": 59, "\\t": 9, "\t": 9, "tab": 9]
            guard let d = named[v] else {
                throw fail(n, join(path, "delimiter"), "expected ',', ';' or tab, found '\(v)'")
            }
            source.csv.delimiter = d
        }
    }

    func checkpoint(_ node: Node) throws(ConfigError) -> CheckpointConfig {
        let path = "checkpoint"
        let m = try mapping(node, path, allowed: ["dir", "every_steps", "keep"])
        var c = CheckpointConfig()
        if let n = m["dir"] {
            guard case .scalar(let v) = n, !v.string.isEmpty else {
                throw fail(n, join(path, "dir"), "expected a folder path, found \(describe(n))")
            }
            c.dir = v.string
        }
        if let n = m["every_steps"] {
            c.everySteps = try int(n, join(path, "every_steps"), min: 0, what: "a step count (0: epoch ends only)")
        }
        if let n = m["keep"] {
            c.keep = try int(n, join(path, "keep"), min: 1, max: 1_000_000, what: "a number of files to keep")
        }
        return c
    }

    func training(_ node: Node) throws(ConfigError) -> TrainingConfig {
        let path = "training"
        let m = try mapping(
            node, path,
            allowed: [
                "epochs", "batch_size", "seed", "shuffle", "validation_split", "workers",
                "on_nan", "max_skipped_batches", "schedule", "class_weight",
            ])
        var t = TrainingConfig()
        if let n = m["epochs"] {
            t.epochs = try int(n, join(path, "epochs"), min: 1, max: 1_000_000, what: "a positive number of epochs")
        }
        if let n = m["batch_size"] {
            t.batchSize = try int(n, join(path, "batch_size"), min: 1, max: 1 << 20, what: "a positive batch size")
        }
        if let n = m["seed"] { t.seed = UInt64(try int(n, join(path, "seed"), min: 0, what: "a non-negative seed")) }
        if let n = m["shuffle"] { t.shuffle = try bool(n, join(path, "shuffle")) }
        if let n = m["validation_split"] {
            t.validationSplit = try number(
                n, join(path, "validation_split"), { $0 >= 0 && $0 < 1 }, "a fraction in [0, 1)")
        }
        if let n = m["on_nan"] {
            t.onNaN = NaNPolicy(
                rawValue: try name(n, join(path, "on_nan"), from: NaNPolicy.allCases.map(\.rawValue), what: "policy"))!
        }
        if let n = m["max_skipped_batches"] {
            t.maxSkippedBatches = try int(n, join(path, "max_skipped_batches"), min: 1, what: "a number of batches")
        }
        if let n = m["schedule"] {
            t.schedule = SchedulePolicy(
                rawValue: try name(
                    n, join(path, "schedule"), from: SchedulePolicy.allCases.map(\.rawValue), what: "schedule"))!
        }
        if let n = m["class_weight"] { t.classWeight = try classWeight(n, join(path, "class_weight")) }
        if let n = m["workers"] {
            if n.string == "auto" {
                t.workers = nil
            } else {
                t.workers = try int(n, join(path, "workers"), min: 1, max: 4096, what: "a worker count (or auto)")
            }
        }
        return t
    }
}

extension Reader {
    /// `balanced`, or a map from class index to weight ({0: 1.0, 1: 5.0}; classes not named weigh 1).
    func classWeight(_ node: Node, _ path: String) throws(ConfigError) -> ClassWeight {
        if case .scalar(let s) = node {
            guard s.string == "balanced" else {
                throw fail(node, path, "expected 'balanced' or a map from class index to weight, found '\(s.string)'")
            }
            return .balanced
        }
        guard case .mapping(let pairs) = node, !pairs.isEmpty else {
            throw fail(node, path, "expected 'balanced' or a map from class index to weight, found \(describe(node))")
        }
        var weights: [Int: Double] = [:]
        for (k, v) in pairs {
            guard case .scalar(let key) = k, let c = Int(key.string), c >= 0 else {
                throw fail(k, path, "expected a class index (0, 1, 2, …) as key, found \(describe(k))")
            }
            weights[c] = try number(v, join(path, "\(c)"), { $0 >= 0 && $0.isFinite }, "a weight ≥ 0")
        }
        return .map(weights)
    }
}

func join(_ a: String, _ b: String) -> String { a.isEmpty ? b : a + "." + b }

func describe(_ node: Node) -> String {
    switch node {
    case .scalar(let s): s.string.isEmpty ? "an empty value" : "'\(s.string)'"
    case .mapping: "a mapping"
    case .sequence: "a list"
    case .alias: "an alias"
    }
}

/// " (did you mean 'x'?)" when a candidate is within edit distance 2 (or shares a long prefix), else "".
func didYouMean(_ word: String, _ candidates: [String]) -> String {
    if word.count >= 4, let prefixed = candidates.first(where: { $0.hasPrefix(word.lowercased()) }) {
        return "; did you mean '\(prefixed)'?"
    }
    let scored = candidates.map { ($0, editDistance(word.lowercased(), $0)) }.sorted { $0.1 < $1.1 }
    guard let best = scored.first, best.1 <= max(2, word.count / 3) else { return "" }
    return "; did you mean '\(best.0)'?"
}

func editDistance(_ a: String, _ b: String) -> Int {
    let a = Array(a)
    let b = Array(b)
    var prev = Array(0...b.count)
    for i in 1...max(1, a.count) where !a.isEmpty {
        var cur = [i] + Array(repeating: 0, count: b.count)
        for j in 1...max(1, b.count) where !b.isEmpty {
            cur[j] = min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (a[i - 1] == b[j - 1] ? 0 : 1))
        }
        prev = cur
    }
    return a.isEmpty ? b.count : prev[b.count]
}

/// `path` (absolute) relative to the working folder when it lies inside it, so messages stay short.
func shortPath(_ path: String) -> String {
    let cwd = URL(fileURLWithPath: FileManager.default.currentDirectoryPath).standardizedFileURL.path
    return path.hasPrefix(cwd + "/") ? String(path.dropFirst(cwd.count + 1)) : path
}
