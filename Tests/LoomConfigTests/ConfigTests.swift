import Foundation
import LoomConfig
import LoomKernels
import LoomNN
import Testing

let repoRoot = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
    .deletingLastPathComponent().path

let good = """
    model:
      layers:
        - type: dense
          units: 512
          activation: relu
        - type: dense
          units: 10
          activation: softmax
    loss: sparse_categorical_crossentropy
    optimizer:
      name: rmsprop
    data:
      dataset: mnist
    training:
      epochs: 5
      batch_size: 128
    """

func message(_ text: String, overrides: [String] = []) -> String {
    do {
        _ = try ConfigLoader.parse(text, file: "c.yaml", overrides: overrides)
        return "no error"
    } catch { return error.description }
}

@Suite("Config loading and validation")
struct ConfigTests {
    @Test("the shipped configs load; mnist.yaml is the book's example")
    func shipped() throws {
        for name in [
            "mnist", "fashion-mnist", "xor", "fizzbuzz", "digits", "breast-cancer", "mnist-wide", "fashion-mnist-tuned",
            "boston-housing",
        ] {
            _ = try ConfigLoader.load(path: "\(repoRoot)/configs/\(name).yaml")
        }
        let c = try ConfigLoader.load(path: "\(repoRoot)/configs/mnist.yaml")
        #expect(
            c.layers == [
                .dense(units: 512, activation: .relu, kernelInitializer: .glorotUniform, biasInitializer: .zeros),
                .dense(units: 10, activation: .softmax, kernelInitializer: .glorotUniform, biasInitializer: .zeros),
            ])
        #expect(c.optimizer == .rmsprop() && c.loss == .sparseCategoricalCrossentropy)
        #expect(c.training.epochs == 5 && c.training.batchSize == 128)
    }

    @Test("defaults follow Keras; the resolved YAML loads back to the same config")
    func roundTrip() throws {
        let c = try ConfigLoader.parse(good, file: "c.yaml")
        #expect(
            c.training.seed == 1 && c.training.shuffle && c.training.workers == nil && c.training.validationSplit == 0)
        let again = try ConfigLoader.parse(c.yaml, file: "resolved.yaml")
        #expect(
            again.layers == c.layers && again.optimizer == c.optimizer && again.training == c.training
                && again.data == c.data)
    }

    @Test("kernel_regularizer and bias_regularizer in Keras' forms; one clipping mode; both survive the resolved YAML")
    func regularization() throws {
        let regularized = good.replacingOccurrences(
            of: "activation: relu\n",
            with: "activation: relu\n      kernel_regularizer: {l1: 0.001, l2: 0.0001}\n      bias_regularizer: l2\n")
        let c = try ConfigLoader.parse(
            regularized, file: "c.yaml", overrides: ["optimizer.clipnorm=1.5", "model.layers.1.kernel_regularizer=l1"])
        #expect(
            c.layers[0]
                == .dense(
                    units: 512, activation: .relu, kernelInitializer: .glorotUniform, biasInitializer: .zeros,
                    kernelRegularizer: Regularizer(l1: 0.001, l2: 0.0001), biasRegularizer: Regularizer(l2: 0.01)))
        #expect(
            c.layers[1]
                == .dense(
                    units: 10, activation: .softmax, kernelInitializer: .glorotUniform, biasInitializer: .zeros,
                    kernelRegularizer: Regularizer(l1: 0.01)))
        #expect(c.clipping == .norm(1.5))
        let again = try ConfigLoader.parse(c.yaml, file: "resolved.yaml")
        #expect(again.layers == c.layers && again.clipping == c.clipping)
        #expect(
            try ConfigLoader.parse(good, file: "c.yaml", overrides: ["optimizer.global_clipnorm=2"]).clipping
                == .globalNorm(2))
        #expect(
            message(good, overrides: ["optimizer.clipnorm=1", "optimizer.clipvalue=0.5"]).contains(
                "set only one of clipvalue, clipnorm (Keras accepts one clipping mode)"))
        #expect(message(good, overrides: ["optimizer.clipnorm=0"]).contains("a positive number"))
        #expect(message(good, overrides: ["model.layers.0.kernel_regularizer=l3"]).contains("regularizer"))
        #expect(
            message(good, overrides: ["model.layers.0.kernel_regularizer.l2=-1"]).contains("a factor ≥ 0"))
    }

    @Test(
        "loss options, real-valued targets, target lists, sample weights and class weights; all survive the resolved YAML"
    )
    func targetsAndWeights() throws {
        let regression = """
            model:
              layers:
                - {type: dense, units: 8, activation: relu}
                - {type: dense, units: 2}
            loss: {name: huber, delta: 2.5}
            optimizer: {name: adam}
            data: {dataset: csv, train: t.csv, target: [a, b], sample_weight: w}
            """
        let r = try ConfigLoader.parse(regression, file: "c.yaml")
        #expect(r.loss == .huber && r.lossOptions == LossOptions(delta: 2.5) && r.metric == .meanAbsoluteError)
        #expect(r.data.valueTargets && r.data.csv.valueTargets && r.data.csv.targets == ["a", "b"])
        #expect(r.data.csv.weight == "w")
        let again = try ConfigLoader.parse(r.yaml, file: "resolved.yaml")
        #expect(again.lossOptions == r.lossOptions && again.data == r.data && again.metric == .meanAbsoluteError)
        // Cross-entropy from logits, one-hot targets asked for, balanced or mapped class weights.
        let logits = good.replacingOccurrences(of: "activation: softmax", with: "activation: linear")
            .replacingOccurrences(
                of: "loss: sparse_categorical_crossentropy",
                with: "loss: {name: sparse_categorical_crossentropy, from_logits: true}")
        let l = try ConfigLoader.parse(logits, file: "c.yaml", overrides: ["training.class_weight=balanced"])
        #expect(l.lossOptions.fromLogits && l.training.classWeight == .balanced && l.metric == .accuracy)
        let mapped = try ConfigLoader.parse(logits, file: "c.yaml", overrides: ["training.class_weight={0: 2, 3: 0.5}"])
        #expect(mapped.training.classWeight == .map([0: 2, 3: 0.5]))
        let back = try ConfigLoader.parse(mapped.yaml, file: "resolved.yaml")
        #expect(back.training.classWeight == mapped.training.classWeight && back.lossOptions.fromLogits)
        #expect(ClassWeight.balanced.weights(labels: [0, 0, 0, 1], classes: 3) == [Float(4) / 6, 2, 1])
        // Refused, with the fix.
        #expect(
            message(good, overrides: ["loss={name: sparse_categorical_crossentropy, from_logits: true}"]).contains(
                "make that layer linear"))
        #expect(
            message(good, overrides: ["loss={name: mean_squared_error, from_logits: true}"]).contains(
                "applies to the cross-entropy losses only"))
        #expect(
            message(good, overrides: ["loss={name: sparse_categorical_crossentropy, delta: 1}"]).contains(
                "applies to huber only"))
        #expect(message(good, overrides: ["training.class_weight=even"]).contains("expected 'balanced' or a map"))
        #expect(message(good, overrides: ["training.class_weight={a: 1}"]).contains("expected a class index"))
        #expect(message(good, overrides: ["training.class_weight={1: -1}"]).contains("a weight ≥ 0"))
        #expect(message(regression, overrides: ["training.class_weight=balanced"]).contains("real values (regression)"))
        #expect(message(good, overrides: ["data.targets=values"]).contains("applies to datasets arrays, idx and csv"))
        #expect(message(good, overrides: ["data.sample_weight=w"]).contains("is a key of dataset csv only"))
    }

    @Test("an unknown key names file, line, key path and the key meant")
    func unknownKey() {
        let text = good.replacingOccurrences(of: "  epochs: 5", with: "  epoch: 5")
        #expect(
            message(text)
                == "c.yaml:15:3: training.epoch: unknown key; did you mean 'epochs'? (valid keys: epochs, batch_size, seed, shuffle, validation_split, workers, on_nan, max_skipped_batches, schedule, class_weight)"
        )
    }

    @Test("a wrong type")
    func wrongType() {
        let text = good.replacingOccurrences(of: "batch_size: 128", with: "batch_size: lots")
        #expect(message(text) == "c.yaml:16:15: training.batch_size: expected a positive batch size, found 'lots'")
    }

    @Test("a negative batch size")
    func negativeBatch() {
        let text = good.replacingOccurrences(of: "batch_size: 128", with: "batch_size: -3")
        #expect(
            message(text)
                == "c.yaml:16:15: training.batch_size: expected a positive batch size in 1...1048576, found -3")
    }

    @Test("an unknown activation lists the valid ones")
    func unknownActivation() {
        let text = good.replacingOccurrences(of: "activation: relu", with: "activation: rellu")
        #expect(
            message(text)
                == "c.yaml:5:19: model.layers.0.activation: unknown activation 'rellu'; did you mean 'relu'? (valid: linear, relu, sigmoid, tanh, softmax)"
        )
    }

    @Test("an unknown optimizer, a bad learning rate, a key of another optimizer")
    func optimizer() {
        #expect(
            message(good.replacingOccurrences(of: "name: rmsprop", with: "name: rmsprob")).hasPrefix(
                "c.yaml:11:9: optimizer.name: unknown optimizer 'rmsprob'; did you mean 'rmsprop'?"))
        #expect(
            message(good, overrides: ["optimizer.learning_rate=-1"]).contains(
                "optimizer.learning_rate: expected a positive learning rate, found -1"))
        #expect(message(good, overrides: ["optimizer.nesterov=true"]).contains("optimizer.nesterov: unknown key"))
    }

    @Test("a YAML syntax error gives the line")
    func syntax() {
        let text = good.replacingOccurrences(of: "  epochs: 5", with: "  epochs: [5")
        #expect(message(text).hasPrefix("c.yaml:"))
        #expect(message(text).contains("YAML syntax error"))
        #expect(!message(text).contains("\n"))
    }

    @Test("a missing file, a missing section")
    func missing() {
        #expect(throws: ConfigError.self) { try ConfigLoader.load(path: "/nonexistent.yaml") }
        #expect(message("loss: mean_squared_error\n").contains("model: missing (required)"))
    }

    @Test("--set overrides any key, including list elements, and is validated like the file")
    func overrides() throws {
        let c = try ConfigLoader.parse(
            good, file: "c.yaml",
            overrides: [
                "training.epochs=2", "model.layers.0.units=64", "optimizer.learning_rate=0.01", "training.workers=3",
                "model.layers.1.kernel_initializer={name: random_normal, stddev: 0.1}",
            ])
        #expect(c.training.epochs == 2 && c.training.workers == 3 && c.optimizer.learningRate == 0.01)
        #expect(
            c.layers[0]
                == .dense(units: 64, activation: .relu, kernelInitializer: .glorotUniform, biasInitializer: .zeros))
        #expect(
            c.layers[1]
                == .dense(
                    units: 10, activation: .softmax, kernelInitializer: .randomNormal(mean: 0, stddev: 0.1),
                    biasInitializer: .zeros))
        #expect(
            message(good, overrides: ["training.epochz=2"]).contains(
                "training.epochz: unknown key; did you mean 'epochs'?"))
        #expect(
            message(good, overrides: ["model.layers.5.units=2"]).contains("model.layers.5: model.layers is a list of 2")
        )
        #expect(message(good, overrides: ["noequals"]).contains("not of the form key.path=value"))
        #expect(
            message(good, overrides: ["training.batch_size=0"])
                == "--set: training.batch_size: expected a positive batch size in 1...1048576, found 0")
    }
}

@Suite("Config loader under mutated input")
struct ConfigMutationTests {
    @Test("thousands of byte- and token-level mutations of the shipped configs: an error or a config, never a crash")
    func mutations() throws {
        var state: UInt64 = 0x1234_5678
        func next(_ n: Int) -> Int {
            state = state &* 6_364_136_223_846_793_005 &+ 1_442_695_040_888_963_407
            return Int((state >> 33) % UInt64(max(1, n)))
        }
        let tokens = [
            "{", "}", "[", "]", ":", "- ", "\n", "  ", "&a ", "*a", "!!int ", "'", "\"", "#", "~", "null",
            "-1", "1e309", "0x10", ".nan", "type: dense", "units:", "layers:", "\t", "\u{0}", "é", "---\n",
        ]
        var parsed = 0
        var rejected = 0
        let names = [
            "mnist", "fashion-mnist", "xor", "fizzbuzz", "digits", "breast-cancer", "mnist-wide", "fashion-mnist-tuned",
            "boston-housing",
        ]
        for name in names {
            let original = Array(try String(contentsOfFile: "\(repoRoot)/configs/\(name).yaml", encoding: .utf8).utf8)
            for _ in 0..<500 {
                var bytes = original
                for _ in 0...next(4) {
                    let i = next(bytes.count + 1)
                    switch next(4) {
                    case 0 where !bytes.isEmpty: bytes.remove(at: min(i, bytes.count - 1))
                    case 1: bytes.insert(UInt8(next(256)), at: i)
                    case 2: bytes.insert(contentsOf: Array(tokens[next(tokens.count)].utf8), at: i)
                    default:
                        let j = next(bytes.count + 1)
                        if i < j { bytes.removeSubrange(i..<j) }
                    }
                }
                let text = String(decoding: bytes, as: UTF8.self)
                do {
                    _ = try ConfigLoader.parse(
                        text, file: "m.yaml", overrides: next(3) == 0 ? ["training.epochs=\(next(9))"] : [])
                    parsed += 1
                } catch {
                    #expect(!error.description.contains("\n"), "multi-line error: \(error.description)")
                    rejected += 1
                }
            }
        }
        #expect(parsed + rejected == names.count * 500 && rejected > 0)
    }
}
