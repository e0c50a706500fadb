import Foundation
import LoomNN
import Testing

/// Each schedule against Keras 3's formula, written out here on its own, at several steps. Keras evaluates a
/// schedule at the iteration count before the update: s = step − 1.
@Suite("Learning-rate schedules")
struct ScheduleFormulaTests {
    let lr0: Float = 0.1

    func expectRates(
        _ schedule: LearningRateSchedule, _ keras: (Double) -> Double,
        steps: [Int] = [1, 2, 10, 11, 57, 100, 101, 1000]
    ) {
        for step in steps {
            let want = Float(keras(Double(step - 1)))
            let got = schedule.rate(initial: lr0, step: step)
            #expect(abs(got - want) <= 2 * want.ulp, "\(schedule.name) at step \(step): \(got) vs \(want)")
        }
    }

    @Test("exponential_decay and inverse_time_decay, smooth and staircase")
    func decays() {
        expectRates(.exponentialDecay(decaySteps: 10, decayRate: 0.5, staircase: false)) { 0.1 * pow(0.5, $0 / 10) }
        expectRates(.exponentialDecay(decaySteps: 10, decayRate: 0.5, staircase: true)) {
            0.1 * pow(0.5, ($0 / 10).rounded(.down))
        }
        expectRates(.inverseTimeDecay(decaySteps: 10, decayRate: 0.5, staircase: false)) { 0.1 / (1 + 0.5 * $0 / 10) }
        expectRates(.inverseTimeDecay(decaySteps: 10, decayRate: 0.5, staircase: true)) {
            0.1 / (1 + 0.5 * ($0 / 10).rounded(.down))
        }
    }

    @Test("polynomial_decay, with and without cycle")
    func polynomial() {
        expectRates(.polynomialDecay(decaySteps: 100, endLearningRate: 0.001, power: 2, cycle: false)) { s in
            (0.1 - 0.001) * pow(1 - min(s, 100) / 100, 2) + 0.001
        }
        expectRates(.polynomialDecay(decaySteps: 100, endLearningRate: 0.001, power: 1, cycle: true)) { s in
            let d = 100 * max(1, (s / 100).rounded(.up))
            return (0.1 - 0.001) * (1 - s / d) + 0.001
        }
    }

    @Test("cosine_decay, with alpha, and with a linear warmup to a target")
    func cosine() {
        expectRates(.cosineDecay(decaySteps: 100, alpha: 0.1, warmupSteps: 0, warmupTarget: nil)) { s in
            0.1 * (0.9 * 0.5 * (1 + cos(Double.pi * min(s, 100) / 100)) + 0.1)
        }
        expectRates(.cosineDecay(decaySteps: 100, alpha: 0, warmupSteps: 10, warmupTarget: 0.5)) { s in
            s < 10 ? 0.1 + (0.5 - 0.1) * s / 10 : 0.5 * 0.5 * (1 + cos(Double.pi * min(s - 10, 100) / 100))
        }
        // Keras' own example numbers: warmup from 0.1 to 0.5 halfway at s = 5, the peak at s = 10.
        let s = LearningRateSchedule.cosineDecay(decaySteps: 100, alpha: 0, warmupSteps: 10, warmupTarget: 0.5)
        #expect(abs(s.rate(initial: 0.1, step: 6) - 0.3) < 1e-6 && abs(s.rate(initial: 0.1, step: 11) - 0.5) < 1e-6)
    }

    @Test("piecewise_constant: values[0] up to the first boundary, the last past the last")
    func piecewise() {
        let s = LearningRateSchedule.piecewiseConstant(boundaries: [100, 200], values: [1.0, 0.5, 0.1])
        #expect(s.rate(initial: lr0, step: 1) == 1.0 && s.rate(initial: lr0, step: 101) == 1.0)
        #expect(s.rate(initial: lr0, step: 102) == 0.5 && s.rate(initial: lr0, step: 201) == 0.5)
        #expect(s.rate(initial: lr0, step: 202) == 0.1 && s.rate(initial: lr0, step: 100_000) == 0.1)
        #expect(LearningRateSchedule.constant.rate(initial: lr0, step: 7) == lr0)
    }

    @Test("the optimizer takes the scheduled rate at each step (sgd: w −= lr(t)·g)")
    func optimizerUsesSchedule() {
        let o = Optimizer(.sgd(learningRate: 0.1), parameterCount: 4)
        o.schedule = .exponentialDecay(decaySteps: 1, decayRate: 0.5, staircase: false)
        var w: [Float] = [1, 1, 1, 1]
        var g: [Float] = [1, 2, 3, 4]
        w.withUnsafeMutableBufferPointer { wp in
            g.withUnsafeMutableBufferPointer { gp in
                o.update(0..<4, parameters: wp.baseAddress!, gradients: gp.baseAddress!, step: 1)  // lr 0.1
                o.update(0..<4, parameters: wp.baseAddress!, gradients: gp.baseAddress!, step: 2)  // lr 0.05
            }
        }
        let want: [Float] = [0.85, 0.7, 0.55, 0.4]  // 1 − 0.1·g − 0.05·g
        for (got, expected) in zip(w, want) { #expect(abs(got - expected) < 1e-6) }
    }
}
