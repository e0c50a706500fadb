import Foundation
import LoomConfig
import LoomData
import LoomKernels
import LoomNN
import LoomTestSupport
import Testing

@testable import LoomEngine

let smallConfig = try! ConfigLoader.parse(
    """
    model:
      layers:
        - {type: dense, units: 24, activation: relu}
        - {type: dropout, rate: 0.1}
        - {type: dense, units: 4, activation: softmax}
    loss: sparse_categorical_crossentropy
    optimizer: {name: rmsprop, learning_rate: 0.01, momentum: 0.5}
    data: {dataset: fizzbuzz}
    training: {epochs: 3, batch_size: 50, seed: 3}
    """, file: "small.yaml")

@Suite("Checkpoints and safetensors", .serialized)
struct CheckpointTests {
    func freshTrainer(workers: Int) -> Trainer {
        let model = smallConfig.makeModel(inputWidth: 10)
        model.initialize(seed: 3)
        return Trainer(
            checked: model, optimizer: smallConfig.optimizer, placements: Topology.detect().placement(workers: workers),
            batchSize: 50, seed: 3)
    }

    @Test(
        "a run cut mid-epoch and resumed (same or other worker count) ends bitwise equal to an uninterrupted one",
        arguments: [(2, 2, 23), (2, 3, 23), (1, 4, 19), (3, 1, 40)])
    func exactResume(first: Int, second: Int, cut: Int) throws {
        let data = fizzBuzz().train
        let full = freshTrainer(workers: 2)
        _ = full.fit(data, epochs: 3)
        let expected = full.model.weightsDigest()

        let dir = temporaryFolder("loom-ckpt")
        let a = freshTrainer(workers: first)
        var control = FitControl()
        control.maxSteps = cut
        var saved: String?
        control.checkpoint = { point in
            let path = dir + "/" + Checkpoint.fileName(step: point.step)
            try! Checkpoint.save(a, config: smallConfig, at: point, to: path)
            saved = path
        }
        _ = a.fit(data, epochs: 3, control: control)
        #expect(a.step == cut)
        let b = freshTrainer(workers: second)
        var resume = FitControl()
        resume.resume = try Checkpoint.restore(b, from: #require(saved))
        let history = b.fit(data, epochs: 3, control: resume)
        #expect(history.last?.epoch == 3)
        #expect(b.model.weightsDigest() == expected)
    }

    @Test("weights round-trip through safetensors in Keras layout")
    func weightsRoundTrip() throws {
        let t = freshTrainer(workers: 1)
        _ = t.fit(fizzBuzz().train, epochs: 1)
        let path = temporaryFolder("loom-ckpt") + "/w.safetensors"
        try Checkpoint.saveWeights(t.model, config: smallConfig, to: path)
        let (tensors, meta) = try SafeTensors.read(path)
        #expect(meta["format"] == "loom-weights" && meta["weights_digest"] == t.model.weightsDigest())
        #expect(
            tensors.map(\.name).sorted() == ["layers.0.bias", "layers.0.kernel", "layers.2.bias", "layers.2.kernel"])
        #expect(tensors.first { $0.name == "layers.0.kernel" }?.shape == [10, 24])
        let saved = try SavedModel(path: path)
        #expect(try saved.makeModel().weightsDigest() == t.model.weightsDigest())
    }

    @Test("damaged files: each a clear error, never a crash")
    func damaged() throws {
        let t = freshTrainer(workers: 1)
        let dir = temporaryFolder("loom-ckpt")
        let good = SafeTensors.encode(Checkpoint.weightTensors(t.model), metadata: ["format": "loom-weights"])
        func check(_ bytes: Data, _ fragment: String) {
            let path = dir + "/bad-\(UUID().uuidString)"
            _ = FileManager.default.createFile(atPath: path, contents: bytes)
            #expect { try SafeTensors.read(path) } throws: { "\($0)".contains(fragment) && "\($0)".hasPrefix(path) }
        }
        check(good.prefix(5), "shorter than the 8-byte header")
        check(good.prefix(good.count - 7), "truncated")
        var huge = good
        huge[7] = 0x7f
        check(huge, "runs past the end")
        var json = good
        json[9] = UInt8(ascii: "!")
        check(json, "not a JSON object")
        let text = String(decoding: good, as: UTF8.self)
        check(Data(text.replacingOccurrences(of: "\"F32\"", with: "\"I64\"").utf8), "dtype I64")
        // Offsets that overlap: make the second tensor start at 0.
        let header = Int(good[0]) | Int(good[1]) << 8
        var object = try JSONSerialization.jsonObject(with: good[8..<8 + header]) as! [String: Any]
        var entry = object["layers.0.kernel"] as! [String: Any]
        entry["data_offsets"] = [0, (entry["data_offsets"] as! [Int])[1] - (entry["data_offsets"] as! [Int])[0]]
        object["layers.0.kernel"] = entry
        var bias = object["layers.0.bias"] as! [String: Any]
        bias["data_offsets"] = [0, 96]
        object["layers.0.bias"] = bias
        var h = try JSONSerialization.data(withJSONObject: object)
        while h.count % 8 != 0 { h.append(0x20) }
        var n = UInt64(h.count).littleEndian
        var overlapping = Data(bytes: &n, count: 8)
        overlapping.append(h)
        overlapping.append(good[(8 + header)...])
        check(overlapping, "overlaps")
        // Wrong shapes for the model.
        let other = Sequential(
            inputWidth: 10, layers: [Dense(units: 7, activation: .relu), Dense(units: 4, activation: .softmax)],
            loss: .sparseCategoricalCrossentropy)
        #expect { try Checkpoint.load(SafeTensors.decode(good, path: "g").tensors, into: other, path: "g") } throws: {
            "\($0)".contains("layers.0.kernel") && "\($0)".contains("[10, 24]") && "\($0)".contains("[10, 7]")
        }
    }
}
