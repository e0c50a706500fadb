// What a program built on Loom may set up for its whole process — output buffering, the stop signals a training
// run polls, pinning the calling thread — and which kernel build the process runs. The `loom` command line uses
// exactly this; so can any other front end.
import CSupport
import LoomKernels

/// Process-wide setup for a program that trains with Loom.
public enum ProcessSetup {
    /// Makes standard output line-buffered, so that progress lines appear as they are printed, also through a
    /// pipe.
    public static func lineBufferOutput() { loom_line_buffer_output() }

    /// Installs SIGINT and SIGTERM handlers that only set a flag; a run with `stopOnSignal` checks it between
    /// steps, checkpoints and stops cleanly.
    public static func installStopSignalHandlers() { loom_install_signal_handlers() }

    /// Pins the calling thread to `cpu`, as a worker is pinned; false when the system refuses.
    @discardableResult
    public static func pinCurrentThread(to cpu: Int) -> Bool { loom_pin_current_thread(Int32(cpu)) == 0 }

    /// Floats per SIMD register vector of the kernels this process runs (8 for AVX2, 16 for AVX-512).
    public static var vectorLanes: Int { KernelISA.active.lanes }

    /// Which kernel build runs, and why: "AVX-512 (16-wide vectors; the CPU has AVX-512)".
    public static var kernelsDescription: String {
        let active = KernelISA.active
        let why =
            active == .avx512
            ? "the CPU has AVX-512"
            : KernelISA.cpuHasAVX512 ? "LOOM_KERNELS=avx2 forces them" : "the CPU has no AVX-512"
        return "\(active.rawValue) (\(active.lanes)-wide vectors; \(why))"
    }
}
