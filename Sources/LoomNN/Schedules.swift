// Learning-rate schedules, with Keras 3's names, parameters and formulas (keras.optimizers.schedules). Keras
// evaluates a schedule at the optimizer's iteration count before the update, s = t − 1 for Loom's 1-based
// step t; lr₀ is the optimizer's learning_rate.
//   exponential_decay   lr₀ · rate^(s / decay_steps)                        (staircase: ⌊s / decay_steps⌋)
//   inverse_time_decay  lr₀ / (1 + rate · s / decay_steps)                   (staircase: ⌊s / decay_steps⌋)
//   polynomial_decay    (lr₀ − end) · (1 − min(s, decay_steps) / decay_steps)^power + end
//                       (cycle: decay_steps · ⌈s / decay_steps⌉ instead, at least decay_steps)
//   cosine_decay        lr₀ · ((1 − α) · ½(1 + cos(π · min(s, decay_steps) / decay_steps)) + α); with
//                       warmup_steps w and warmup_target lr₁: lr₀ + (lr₁ − lr₀) · s / w while s < w, then the
//                       cosine from lr₁ over s − w
//   piecewise_constant  values[i] for boundaries[i−1] < s ≤ boundaries[i] (values[0] up to boundaries[0],
//                       the last value past the last boundary)
// A schedule is a pure function of the step, so a resumed run follows it exactly.
import Foundation

/// How the learning rate changes with the optimizer step.
public enum LearningRateSchedule: Equatable, Sendable {
    /// The optimizer's learning rate at every step.
    case constant
    /// lr · rate^(step / decaySteps), stepwise with `staircase`.
    case exponentialDecay(decaySteps: Int, decayRate: Double, staircase: Bool)
    /// lr / (1 + rate · step / decaySteps), stepwise with `staircase`.
    case inverseTimeDecay(decaySteps: Int, decayRate: Double, staircase: Bool)
    /// From lr to `endLearningRate` over `decaySteps` as (1 − step / decaySteps)^power, repeating with `cycle`.
    case polynomialDecay(decaySteps: Int, endLearningRate: Double, power: Double, cycle: Bool)
    /// A linear warm-up to `warmupTarget`, then a cosine to `alpha` times the rate over `decaySteps`.
    case cosineDecay(decaySteps: Int, alpha: Double, warmupSteps: Int, warmupTarget: Double?)
    /// `values[i]` while the step is below `boundaries[i]`, the last value beyond.
    case piecewiseConstant(boundaries: [Int], values: [Double])

    /// The schedule names a config accepts.
    public static let names = [
        "constant", "exponential_decay", "inverse_time_decay", "polynomial_decay", "cosine_decay",
        "piecewise_constant",
    ]

    /// The config name.
    public var name: String {
        switch self {
        case .constant: "constant"
        case .exponentialDecay: "exponential_decay"
        case .inverseTimeDecay: "inverse_time_decay"
        case .polynomialDecay: "polynomial_decay"
        case .cosineDecay: "cosine_decay"
        case .piecewiseConstant: "piecewise_constant"
        }
    }

    /// The learning rate of optimizer step `step` (1-based), from the initial rate `initial`.
    public func rate(initial: Float, step: Int) -> Float {
        let lr0 = Double(initial)
        let s = Double(max(0, step - 1))
        switch self {
        case .constant:
            return initial
        case .exponentialDecay(let steps, let rate, let staircase):
            let p = s / Double(steps)
            return Float(lr0 * pow(rate, staircase ? p.rounded(.down) : p))
        case .inverseTimeDecay(let steps, let rate, let staircase):
            let p = s / Double(steps)
            return Float(lr0 / (1 + rate * (staircase ? p.rounded(.down) : p)))
        case .polynomialDecay(let steps, let end, let power, let cycle):
            var decay = Double(steps)
            var x = s
            if cycle {
                decay *= max(1, (s / decay).rounded(.up))
            } else {
                x = min(s, decay)
            }
            return Float((lr0 - end) * pow(1 - x / decay, power) + end)
        case .cosineDecay(let steps, let alpha, let warmup, let target):
            func cosine(_ from: Double, _ x: Double) -> Double {
                let progress = min(x, Double(steps)) / Double(steps)
                return from * ((1 - alpha) * 0.5 * (1 + cos(Double.pi * progress)) + alpha)
            }
            guard let target else { return Float(cosine(lr0, s)) }
            if s < Double(warmup) { return Float(lr0 + (target - lr0) * s / Double(warmup)) }
            return Float(cosine(target, s - Double(warmup)))
        case .piecewiseConstant(let boundaries, let values):
            let i = boundaries.firstIndex { s <= Double($0) } ?? boundaries.count
            return Float(values[i])
        }
    }
}
