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
    /// A layer written on its own line.
    public static func buildExpression(_ layer: any Layer) -> [any Layer] { [layer] }
    /// Several layers from an expression (an array).
    public static func buildExpression(_ layers: [any Layer]) -> [any Layer] { layers }
    /// The layers of a block, in order.
    public static func buildBlock(_ parts: [any Layer]...) -> [any Layer] { parts.flatMap { $0 } }
    /// The layers of an `if` whose condition held, or none.
    public static func buildOptional(_ layers: [any Layer]?) -> [any Layer] { layers ?? [] }
    /// The layers of an `if` branch.
    public static func buildEither(first layers: [any Layer]) -> [any Layer] { layers }
    /// The layers of an `else` branch.
    public static func buildEither(second layers: [any Layer]) -> [any Layer] { layers }
    /// The layers of a `for` loop's iterations, in order.
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
