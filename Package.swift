// swift-tools-version: 6.1
// Loom — a data-parallel neural-network trainer for many-core CPUs.
//
// Module stairs (each depends only on the ones to its right):
//   loom (CLI) → LoomEngine → LoomConfig → LoomNN → LoomKernels
//                    └────────→ LoomData ──────────────┘
// C shims: CSupport (pinning, cpu pause), CNuma (libnuma), CZlib (gzip), CPng (libpng).
import PackageDescription
import Foundation

// The kernels are SIMD code: without a target CPU, swiftc lowers `addingProduct` to one scalar `fmaf` call per
// lane (~200x slower). We compile for the CPU we build on by default; set LOOM_TARGET_CPU to build for another
// one (e.g. `haswell` for AVX2-only machines, `skylake-avx512` for a portable AVX-512 binary).
let targetCPU = ProcessInfo.processInfo.environment["LOOM_TARGET_CPU"] ?? "native"
// The register tile is two vectors wide: SIMD16 where the target has AVX-512 (32 zmm registers), SIMD8 on AVX2
// (16 ymm). Swift cannot ask the target's features in `#if`, so the package decides and passes a define.
let cpuFlags = (try? String(contentsOfFile: "/proc/cpuinfo", encoding: .utf8)) ?? ""
let avx512: Bool = {
    switch targetCPU {
    case "native": return cpuFlags.contains(" avx512f")
    case "haswell", "broadwell", "skylake", "znver1", "znver2", "znver3", "x86-64-v3", "x86-64-v2", "x86-64": return false
    default: return targetCPU.contains("avx512") || ["znver4", "znver5", "icelake-server", "sapphirerapids",
                                                      "x86-64-v4", "cascadelake", "cooperlake"].contains(targetCPU)
    }
}()
let fastSwift: [SwiftSetting] = [
    .unsafeFlags(["-target-cpu", targetCPU]),
    .unsafeFlags(["-Ounchecked", "-enforce-exclusivity=unchecked"], .when(configuration: .release)),
] + (avx512 ? [.define("LOOM_AVX512")] : [])
let fastC: [CSetting] = [.unsafeFlags(["-march=\(targetCPU)", "-O2"])]

let package = Package(
    name: "Loom",
    platforms: [.macOS(.v15)],
    products: [
        .executable(name: "loom", targets: ["loom"]),
        .library(name: "LoomEngine", targets: ["LoomEngine"]),
    ],
    dependencies: [
        .package(url: "https://github.com/jpsim/Yams", from: "6.2.2"),
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.8.2"),
        .package(url: "https://github.com/apple/swift-atomics", from: "1.3.0"),
    ],
    targets: [
        .target(name: "CSupport", dependencies: ["CNuma"], cSettings: fastC, linkerSettings: [.linkedLibrary("numa")]),
        .systemLibrary(name: "CNuma", providers: [.apt(["libnuma-dev"])]),
        .systemLibrary(name: "CZlib", providers: [.apt(["zlib1g-dev"])]),
        .systemLibrary(name: "CPng", providers: [.apt(["libpng-dev"])]),
        .target(name: "LoomKernels", swiftSettings: fastSwift),
        .target(name: "LoomNN", dependencies: ["LoomKernels"], swiftSettings: fastSwift),
        .target(name: "LoomData", dependencies: ["LoomKernels", "CZlib", "CPng"], swiftSettings: fastSwift),
        .target(name: "LoomConfig", dependencies: ["LoomNN", "LoomData", "Yams"], swiftSettings: fastSwift),
        .target(
            name: "LoomEngine",
            dependencies: [
                "LoomKernels", "LoomNN", "LoomData", "LoomConfig", "CSupport",
                .product(name: "Atomics", package: "swift-atomics"),
            ],
            swiftSettings: fastSwift),
        .executableTarget(
            name: "loom",
            dependencies: ["LoomEngine", "LoomKernels", "LoomData", "CSupport", .product(name: "ArgumentParser", package: "swift-argument-parser")],
            swiftSettings: fastSwift),
        .testTarget(name: "LoomKernelsTests", dependencies: ["LoomKernels"], swiftSettings: fastSwift),
        .testTarget(name: "LoomNNTests", dependencies: ["LoomNN"], swiftSettings: fastSwift),
        .testTarget(name: "LoomDataTests", dependencies: ["LoomData"], swiftSettings: fastSwift),
        .testTarget(name: "LoomConfigTests", dependencies: ["LoomConfig"], swiftSettings: fastSwift),
        .testTarget(name: "LoomEngineTests", dependencies: ["LoomEngine"], swiftSettings: fastSwift),
        // Runs the built `loom` binary as a user would: exit codes, one-line errors, reports.
        .testTarget(name: "LoomCLITests", dependencies: ["loom", "LoomData", "LoomEngine"], swiftSettings: fastSwift),
    ]
)
