// Sweep: the trials of a hyperparameter search (`loom tune`), each an ordinary run with its own `--set`
// overrides: the cartesian product of `--grid key=v1,v2,…` lists, crossed with `--sample N key=dist(…)` draws
// from a seeded generator (uniform, loguniform, choice). The trial list is a pure function of the command line,
// so a sweep rerun with the same command finds the same trials (and skips those already finished).
import Foundation
import LoomNN

/// One trial: its number and the overrides that define it.
public struct Trial: Sendable, Equatable {
    /// The trial's number, from 1.
    public var index: Int
    /// The config overrides it runs with (`optimizer.learning_rate=0.01`).
    public var overrides: [String]
    /// "trial-007".
    public var name: String { String(format: "trial-%03d", index) }
}

/// The parts of a sweep's command line, parsed; an error is one line naming the bad part.
public enum Sweep {
    /// Expands `grid` ("key=v1,v2") and `samples` ("key=loguniform(1e-4,1e-2)", drawn `count` times with
    /// `seed`) into trials: every grid point for every draw.
    public static func trials(grid: [String], samples: [String], count: Int, seed: UInt64) throws(LoomError) -> [Trial]
    {
        var points: [[String]] = [[]]
        for spec in grid {
            let (key, text) = try split(spec, option: "--grid")
            let values = text.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }
            guard !values.isEmpty, !values.contains(where: \.isEmpty) else {
                throw .usage("--grid \(spec): expected key=value1,value2,…")
            }
            points = points.flatMap { p in values.map { p + ["\(key)=\($0)"] } }
        }
        if !samples.isEmpty {
            guard count >= 1 else {
                throw .usage("--sample: give the number of draws, e.g. --sample 8 key=uniform(0,1)")
            }
            let distributions = try samples.map { spec throws(LoomError) in
                try (split(spec, option: "--sample").0, distribution(spec))
            }
            var rng = Random(seed: seed ^ 0x7475_6E65)
            var draws: [[String]] = []
            for _ in 0..<count {
                draws.append(distributions.map { key, d in "\(key)=\(d.draw(&rng))" })
            }
            points = points.flatMap { p in draws.map { p + $0 } }
        }
        return points.enumerated().map { Trial(index: $0.offset + 1, overrides: $0.element) }
    }

    static func split(_ spec: String, option: String) throws(LoomError) -> (String, String) {
        guard let eq = spec.firstIndex(of: "="), eq != spec.startIndex else {
            throw .usage("\(option) \(spec): expected key.path=values")
        }
        return (String(spec[..<eq]), String(spec[spec.index(after: eq)...]))
    }

    /// A distribution to draw a value from.
    enum Distribution {
        case uniform(Double, Double)
        case loguniform(Double, Double)
        case choice([String])

        func draw(_ rng: inout Random) -> String {
            let u = Double(rng.next() >> 11) / Double(1 << 53)
            switch self {
            case .uniform(let a, let b): return String(format: "%.6g", a + (b - a) * u)
            case .loguniform(let a, let b): return String(format: "%.6g", exp(log(a) + (log(b) - log(a)) * u))
            case .choice(let values): return values[min(values.count - 1, Int(u * Double(values.count)))]
            }
        }
    }

    static func distribution(_ spec: String) throws(LoomError) -> Distribution {
        let text = try split(spec, option: "--sample").1
        let bad = LoomError.usage(
            "--sample \(spec): expected key=uniform(a,b), key=loguniform(a,b) with 0 < a < b, or key=choice(x,y,…)")
        guard let open = text.firstIndex(of: "("), text.hasSuffix(")") else { throw bad }
        let name = text[..<open]
        let args = text[text.index(after: open)..<text.index(before: text.endIndex)].split(separator: ",")
            .map { $0.trimmingCharacters(in: .whitespaces) }
        switch name {
        case "choice" where !args.isEmpty: return .choice(args)
        case "uniform", "loguniform":
            guard args.count == 2, let a = Double(args[0]), let b = Double(args[1]), a < b, name == "uniform" || a > 0
            else { throw bad }
            return name == "uniform" ? .uniform(a, b) : .loguniform(a, b)
        default: throw bad
        }
    }
}
