// Optimizers with Keras 3's update rules and defaults, so the same config means the same thing as in Keras.
// g is the batch-mean gradient, t the 1-based step.
//   sgd      momentum 0:  w −= lr·g
//            momentum m:  v = m·v − lr·g;  w += v          (nesterov: w += m·v − lr·g)
//   rmsprop  a = ρ·a + (1−ρ)·g²;  w −= lr·g / √(a + ε)   (ε inside the root, as Keras 3)
//            momentum m:  v = m·v + lr·g/√(a + ε);  w −= v
//            centered:    ḡ = ρ·ḡ + (1−ρ)·g, and the root is √(a − ḡ² + ε)
//   adam     m += (g − m)(1−β₁);  v += (g² − v)(1−β₂);  α = lr·√(1−β₂ᵗ)/(1−β₁ᵗ);  w −= α·m/(√v + ε)
// Every slot is one flat buffer over all parameters, so an update is one vectorized loop over any range, and
// the element-wise arithmetic (LoomKernels' UpdateRule.apply) is the same whatever range boundaries the workers
// use, and whether it runs in that loop or inside the weight-gradient GEMM's store.
import Foundation
import LoomKernels

/// Which optimizer, with its hyperparameters (Keras 3 defaults).
public enum OptimizerSpec: Equatable, Sendable, CustomStringConvertible {
    /// Stochastic gradient descent, with optional (Nesterov) momentum.
    case sgd(learningRate: Float = 0.01, momentum: Float = 0, nesterov: Bool = false)
    /// RMSprop: each step divided by the running root-mean-square of the gradient, optionally centered and with momentum.
    case rmsprop(
        learningRate: Float = 0.001, rho: Float = 0.9, epsilon: Float = 1e-7, momentum: Float = 0,
        centered: Bool = false)
    /// Adam: bias-corrected running averages of the gradient and its square.
    case adam(learningRate: Float = 0.001, beta1: Float = 0.9, beta2: Float = 0.999, epsilon: Float = 1e-7)
    /// Adam with decoupled weight decay (Keras' AdamW; its weight_decay defaults to 0.004).
    case adamw(learningRate: Float = 0.001, beta1: Float = 0.9, beta2: Float = 0.999, epsilon: Float = 1e-7)

    /// The optimizer names a config accepts.
    public static let names = ["sgd", "rmsprop", "adam", "adamw"]

    /// The config name (`sgd`, `rmsprop`, `adam`).
    public var name: String {
        switch self {
        case .sgd: "sgd"
        case .rmsprop: "rmsprop"
        case .adam: "adam"
        case .adamw: "adamw"
        }
    }
    /// The base learning rate.
    public var learningRate: Float {
        switch self {
        case .sgd(let lr, _, _), .rmsprop(let lr, _, _, _, _), .adam(let lr, _, _, _), .adamw(let lr, _, _, _): lr
        }
    }
    public var description: String {
        switch self {
        case .sgd(let lr, let m, let n): "sgd(learning_rate: \(lr), momentum: \(m), nesterov: \(n))"
        case .rmsprop(let lr, let rho, let eps, let m, let c):
            "rmsprop(learning_rate: \(lr), rho: \(rho), epsilon: \(eps), momentum: \(m), centered: \(c))"
        case .adam(let lr, let b1, let b2, let eps), .adamw(let lr, let b1, let b2, let eps):
            "\(name)(learning_rate: \(lr), beta_1: \(b1), beta_2: \(b2), epsilon: \(eps))"
        }
    }

    /// The state slots this optimizer keeps per parameter, by name.
    public var slotNames: [String] {
        switch self {
        case .sgd(_, let m, _): m != 0 ? ["momentum"] : []
        case .rmsprop(_, _, _, let m, let c):
            ["velocity"] + (m != 0 ? ["momentum"] : []) + (c ? ["average_gradient"] : [])
        case .adam, .adamw: ["m", "v"]
        }
    }
}

/// An optimizer and its state: one flat slot buffer per state variable, parallel to the parameters.
public final class Optimizer: @unchecked Sendable {
    // Sendable: the slots are only ever touched through `update`, on disjoint ranges per worker between barriers;
    // `schedule` is set before training.
    /// The optimizer and its hyperparameters.
    public let spec: OptimizerSpec
    /// How the learning rate changes with the step (constant: the spec's).
    public var schedule = LearningRateSchedule.constant

    /// The base learning rate when a callback (reduce_lr_on_plateau) has changed it; nil: the spec's.
    public var baseLearningRate: Float?
    /// Decoupled weight decay (Keras' weight_decay; 0: none) and gradient clipping (clipvalue, clipnorm,
    /// global_clipnorm). The rule clips by value itself; clipping by norm needs every gradient's norm first,
    /// which the engine computes and passes in as `UpdateRule.gradientScale`.
    public var weightDecay: Float = 0
    /// Gradient clipping.
    public var clipping = GradientClipping.none

    /// The learning rate of step `step` (1-based).
    public func learningRate(step: Int) -> Float {
        schedule.rate(initial: baseLearningRate ?? spec.learningRate, step: step)
    }
    /// The parameters it updates.
    public let parameterCount: Int
    /// The state buffers, in `spec.slotNames` order.
    public let slots: [AlignedBuffer]
    private let s0: UnsafeMutablePointer<Float>
    private let s1: UnsafeMutablePointer<Float>
    private let s2: UnsafeMutablePointer<Float>

    /// An optimizer of `spec` for `parameterCount` parameters, its slots zeroed.
    public init(_ spec: OptimizerSpec, parameterCount: Int) {
        self.spec = spec
        self.parameterCount = parameterCount
        slots = spec.slotNames.map { _ in AlignedBuffer(count: parameterCount) }
        s0 = slots.count > 0 ? slots[0].pointer : UnsafeMutablePointer(bitPattern: 64)!
        s1 = slots.count > 1 ? slots[1].pointer : UnsafeMutablePointer(bitPattern: 64)!
        s2 = slots.count > 2 ? slots[2].pointer : UnsafeMutablePointer(bitPattern: 64)!
    }

    /// The update rule of optimizer step `step` (1-based) for these parameters and gradients.
    public func rule(step: Int, parameters: UnsafeMutablePointer<Float>, gradients: UnsafeMutablePointer<Float>)
        -> UpdateRule
    {
        var rule = baseRule(step: step, parameters: parameters, gradients: gradients)
        rule.weightDecay = weightDecay
        if case .value(let c) = clipping { rule.clipValue = c }
        return rule
    }

    func baseRule(step: Int, parameters: UnsafeMutablePointer<Float>, gradients: UnsafeMutablePointer<Float>)
        -> UpdateRule
    {
        let lr = learningRate(step: step)
        switch spec {
        case .sgd(_, let m, let nesterov):
            return UpdateRule(
                kind: m == 0 ? .sgd : (nesterov ? .nesterov : .momentum), learningRate: lr, a: m,
                parameters: parameters, gradients: gradients, slot0: s0, slot1: s1, slot2: s2)
        case .rmsprop(_, let rho, let eps, let m, let centered):
            let kind: UpdateRule.Kind =
                centered
                ? (m != 0 ? .rmspropCenteredMomentum : .rmspropCentered)
                : (m != 0 ? .rmspropMomentum : .rmsprop)
            return UpdateRule(
                kind: kind, learningRate: lr, a: m, b: rho, epsilon: eps,
                parameters: parameters, gradients: gradients, slot0: s0, slot1: s1, slot2: s2)
        case .adam(_, let b1, let b2, let eps), .adamw(_, let b1, let b2, let eps):
            let t = Float(step)
            let alpha = lr * (1 - Foundation.pow(b2, t)).squareRoot() / (1 - Foundation.pow(b1, t))
            return UpdateRule(
                kind: .adam, learningRate: lr, a: b1, b: b2, epsilon: eps, alpha: alpha,
                parameters: parameters, gradients: gradients, slot0: s0, slot1: s1, slot2: s2)
        }
    }

    /// Applies step `step` (1-based) to parameters `range`, reading their gradients.
    public func update(
        _ range: Range<Int>, parameters: UnsafeMutablePointer<Float>,
        gradients: UnsafeMutablePointer<Float>, step: Int
    ) {
        applyUpdate(rule(step: step, parameters: parameters, gradients: gradients), range)
    }

    /// Resets every slot to zero (a fresh run).
    public func reset() { for s in slots { s.fill(0) } }
}
