// The errors a user can cause, each one line that says what to do, and the exit code the command returns.
import Foundation
import LoomConfig
import LoomData

/// An error a user can cause, with the exit code the command returns for it.
public enum LoomError: Error, CustomStringConvertible {
    /// A config file was refused.
    case config(ConfigError)
    /// A data file was refused.
    case data(DataError)
    /// The worker topology was refused.
    case topology(TopologyError)
    /// A weights or checkpoint file was refused.
    case weights(WeightsError)
    /// A command or API argument was refused.
    case usage(String)
    /// An output file or folder cannot be written (checked before training; at the end, with a fallback).
    case output(String)
    /// The loss stopped being a number: where, and the first layer whose gradient is not finite.
    case diverged(epoch: Int, step: Int, layer: String)
    /// SIGINT/SIGTERM stopped the run after a whole step.
    case interrupted(signal: Int32, step: Int, checkpoint: String?, resume: String?)

    public var description: String {
        switch self {
        case .config(let e): e.description
        case .data(let e): e.description
        case .topology(let e): e.description
        case .weights(let e): e.description
        case .usage(let s), .output(let s): s
        case .diverged(let epoch, let step, let layer):
            "training diverged at epoch \(epoch), step \(step): the loss is not finite (first non-finite gradient: \(layer)); no checkpoint was written from it — lower optimizer.learning_rate, or set training.on_nan=skip_batch"
        case .interrupted(let signal, let step, let checkpoint, let resume):
            "interrupted by \(signal == SIGTERM ? "SIGTERM" : "SIGINT") after step \(step)"
                + (checkpoint.map {
                    "; checkpoint written to \($0); resume with: \(resume ?? "loom train CONFIG --resume \($0)")"
                } ?? "; no checkpoint (set checkpoint.dir to be able to resume)")
        }
    }

    /// 2 for a bad config or command line, 1 for bad data or files, 3 for divergence, 128 + the signal.
    public var exitCode: Int32 {
        switch self {
        case .config, .usage, .topology: 2
        case .data, .weights, .output: 1
        case .diverged: 3
        case .interrupted(let signal, _, _, _): 128 + signal
        }
    }
}
