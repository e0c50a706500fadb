import Loom
import Testing

@Suite("Model.fit on tensors")
struct TensorFitTests {
    /// 200 points of 4 classes in 6 dimensions.
    func data() -> (x: [Float], y: [Int]) {
        var rng = Random(seed: 11)
        var x: [Float] = []
        var y: [Int] = []
        for i in 0..<200 {
            let c = i % 4
            for j in 0..<6 { x.append((j % 4 == c ? 2 : 0) + rng.nextUniform() - 0.5) }
            y.append(c)
        }
        return (x, y)
    }

    func model() throws -> Model {
        try Model(inputWidth: 6, loss: .sparseCategoricalCrossentropy, optimizer: .adam(learningRate: 0.01), seed: 2) {
            Dense(units: 8, activation: .relu)
            Dense(units: 4, activation: .softmax)
        }
    }

    @Test("tensors train to the same weights as the same values in arrays")
    func sameAsArrays() throws {
        let (x, y) = data()
        let fromArrays = try model()
        try fromArrays.fit(
            x: (0..<200).map { Array(x[$0 * 6..<($0 + 1) * 6]) }, y: y, epochs: 3, batchSize: 32, workers: 2)
        let fromTensors = try model()
        let tape = GradientTape()
        try tape.record { () throws in
            let xt = try tape.constant(x, shape: [200, 6])
            let yt = try tape.constant(y.map(Float.init), shape: [200])
            try fromTensors.fit(x: xt, y: yt, epochs: 3, batchSize: 32, workers: 2)
        }
        #expect(fromTensors.network.weightsDigest() == fromArrays.network.weightsDigest())
    }

    @Test("tensors of the wrong shape or labels that are not class indices are a thrown one-line error")
    func refusals() throws {
        let m = try model()
        let tape = GradientTape()
        try tape.record { () throws in
            let x = try tape.constant([Float](repeating: 0, count: 12), shape: [2, 6])
            #expect(throws: LoomError.self) { try m.fit(x: x, y: try tape.constant([0, 1, 2], shape: [3]), epochs: 1) }
            #expect(throws: LoomError.self) { try m.fit(x: x, y: try tape.constant([0, 0.5], shape: [2]), epochs: 1) }
        }
    }
}
