// A rank whose peer died never finishes the exchange it is waiting in. Open MPI's launcher then ends the job:
// SIGTERM to every surviving rank, SIGKILL about a second later. The signal handler only sets a flag that the
// trainer reads at the end of a step, which a rank stuck in a collective never reaches — so without this watch the
// survivors would die silently and the user would see only the launcher's message. The watch is a thread that
// looks every 20 ms: when a stop signal has arrived and worker 0 is still inside the same exchange a grace period
// later (far longer than an exchange takes on this job), it prints one line for its rank — host, step, cause and
// how to resume from the last checkpoint — and ends the process with 128 + the signal, before the SIGKILL.
// A stop that reaches every rank normally (SIGINT or SIGTERM to the launcher) leaves the exchange within
// milliseconds, and the trainer reports it at the step's end as usual.
import CSupport
import Foundation

/// Speaks for a rank that a stop signal finds waiting on ranks that no longer answer (see the file's comment).
final class StallWatch: @unchecked Sendable {
    // Sendable: every mutable field is read and written under `lock`.
    private let lock = NSLock()
    private let rank: Int
    private let host: String
    /// Exchanges entered so far, whether worker 0 is inside one, its step and when it entered (monotonic s).
    private var entered = 0
    private var inside = false
    private var step = 0
    private var enteredAt = 0.0
    /// The longest exchange so far (s): the grace before a stuck rank speaks is ten of them, 0.2–0.8 s.
    private var slowest = 0.0
    /// What to print about resuming: the command with the last checkpoint, or why there is none.
    private var resume = "no checkpoint was written yet (set checkpoint.dir to have one): run the command again"
    private var running = false

    init(rank: Int, host: String) {
        (self.rank, self.host) = (rank, host)
    }

    /// Worker 0 is about to wait on the other ranks in step `step`.
    func enter(step: Int) {
        let now = monotonicSeconds()
        lock.withLock {
            entered += 1
            inside = true
            self.step = step
            enteredAt = now
        }
    }

    /// Worker 0 is back from the exchange.
    func leave() {
        let now = monotonicSeconds()
        lock.withLock {
            inside = false
            slowest = max(slowest, now - enteredAt)
        }
    }

    /// A checkpoint was written (by rank 0; every rank knows its path); `command` resumes from it.
    func checkpointWritten(_ path: String, command: String?) {
        lock.withLock { resume = "resume with: " + (command ?? "loom train … --resume \(path)") }
    }

    /// Starts the watching thread; `stop()` ends it.
    func start() {
        lock.withLock { running = true }
        Thread { [self] in watch() }.start()
    }

    /// Ends the watching thread (at the end of training).
    func stop() { lock.withLock { running = false } }

    /// The line for a rank stuck in step `step`'s exchange when `signal` arrived.
    func line(signal: Int32, waited: Double) -> String {
        lock.withLock {
            let name = signal == SIGTERM ? "SIGTERM" : "SIGINT"
            return "error: rank \(rank) on \(host) stopped in step \(step): \(name) came while it waited "
                + String(format: "%.1f", waited)
                + " s on the other ranks, which no longer answer (a rank has ended: the launcher's message names it); "
                + resume
        }
    }

    private func watch() {
        var seen: (entered: Int, at: Double)?  // the exchange in progress when the signal was first seen
        while lock.withLock({ running }) {
            usleep(20_000)
            let signal = loom_pending_signal()
            guard signal != 0 else { continue }
            let now = monotonicSeconds()
            let (entered, inside, enteredAt, grace) = lock.withLock {
                (self.entered, self.inside, self.enteredAt, min(0.8, max(0.2, 10 * slowest)))
            }
            guard inside else {
                seen = nil
                continue
            }
            if seen?.entered != entered { seen = (entered, now) }
            if let seen, now - seen.at >= grace {
                let text = line(signal: signal, waited: now - enteredAt) + "\n"
                _ = text.withCString { write(2, $0, strlen($0)) }
                _exit(128 + signal)
            }
        }
    }
}
