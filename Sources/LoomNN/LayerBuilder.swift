// LayerBuilder: the layers of a model written as a block, one per line, as in Keras' `Sequential([...])` but
// with Swift's `if` and `for` where a model's shape depends on a setting:
//
//     let model = try Model(inputWidth: 784, loss: .sparseCategoricalCrossentropy) {
//         Dense(units: 512, activation: .relu)
//         if dropout > 0 { Dropout(rate: dropout) }
//         Dense(units: 10, activation: .softmax)
//     }

/// Collects the layers of a `Model` or `Sequential` written as a block.
@resultBuilder
public enum LayerBuilder {
    public static func buildExpression(_ layer: any Layer) -> [any Layer] { [layer] }
    public static func buildExpression(_ layers: [any Layer]) -> [any Layer] { layers }
    public static func buildBlock(_ parts: [any Layer]...) -> [any Layer] { parts.flatMap { $0 } }
    public static func buildOptional(_ layers: [any Layer]?) -> [any Layer] { layers ?? [] }
    public static func buildEither(first layers: [any Layer]) -> [any Layer] { layers }
    public static func buildEither(second layers: [any Layer]) -> [any Layer] { layers }
    public static func buildArray(_ parts: [[any Layer]]) -> [any Layer] { parts.flatMap { $0 } }
}

extension Sequential {
    /// A model of the layers written in `layers`, in order.
    public convenience init(
        inputWidth: Int, loss: Loss, lossOptions: LossOptions = LossOptions(), @LayerBuilder layers: () -> [any Layer]
    ) {
        self.init(inputWidth: inputWidth, layers: layers(), loss: loss, lossOptions: lossOptions)
    }
}
