import Foundation
// swift-tools-version: 6.1
// Loom — a data-parallel neural-network trainer for many-core CPUs.
//
// Module stairs (each depends only on the ones to its right):
//   loom (CLI) → Loom → LoomEngine → LoomConfig → LoomNN → LoomKernels → LoomKernelsAVX512 | LoomKernelsAVX2 → LoomKernelTypes
//                  │         └────────→ LoomData ─────────────┘      (run-time dispatch between the two kernel builds)
//                  └──→ LoomTape ──→ LoomNN
// Loom is the one import of a Swift program (it re-exports the public modules); the CLI uses nothing else.
// C shims: CSupport (pinning, cpu pause), CNuma (libnuma), CLoomZlib (gzip), CPng (libpng), CLoomMPI (the MPI calls;
// stubs unless built with the MPI trait: `swift build -c release --traits MPI`, which needs libopenmpi-dev).
import PackageDescription

// The kernels are SIMD code: without a target CPU, swiftc lowers `addingProduct` to one scalar `fmaf` call per
// lane (~200x slower). They are compiled twice from one source (Sources/LoomKernelsAVX512 links to the files of
// Sources/LoomKernelsAVX2): for skylake-avx512 (AVX-512 F/CD/BW/DQ/VL) with a 16-wide register tile (32 zmm) and
// for haswell (AVX2 + FMA) with an 8-wide one (16 ymm); LoomKernels picks one at run time from the CPU's features.
// Everything else is compiled for haswell, so one binary runs on every x86-64 machine with AVX2 and FMA. Set
// LOOM_TARGET_CPU to compile the AVX-512 kernels for a named CPU instead (e.g. `native`, `znver4`).
let wideCPU = ProcessInfo.processInfo.environment["LOOM_TARGET_CPU"] ?? "skylake-avx512"
let baseCPU = "haswell"
func swiftFlags(cpu: String, defines: [String] = []) -> [SwiftSetting] {
    [
        .unsafeFlags(["-target-cpu", cpu]),
        .unsafeFlags(["-Ounchecked", "-enforce-exclusivity=unchecked"], .when(configuration: .release)),
    ] + defines.map { .define($0) }
}
let fastSwift = swiftFlags(cpu: baseCPU)
let fastC: [CSetting] = [.unsafeFlags(["-march=\(baseCPU)", "-O2"])]

let package = Package(
    name: "Loom",
    platforms: [.macOS(.v15)],
    products: [
        .executable(name: "loom", targets: ["loom"]),
        .library(name: "Loom", targets: ["Loom"]),
        .library(name: "LoomEngine", targets: ["LoomEngine"]),
    ],
    traits: [
        .trait(
            name: "MPI", description: "Data parallelism across processes and machines over MPI (needs libopenmpi-dev)")
    ],
    dependencies: [
        .package(url: "https://github.com/jpsim/Yams", from: "6.2.2"),
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.8.2"),
        .package(url: "https://github.com/apple/swift-atomics", from: "1.3.0"),
        .package(url: "https://github.com/weichsel/ZIPFoundation", from: "0.9.20"),
        // `swift package generate-documentation`: the DocC catalog in Sources/Loom/Loom.docc.
        .package(url: "https://github.com/swiftlang/swift-docc-plugin", from: "1.5.0"),
    ],
    targets: [
        .target(name: "CSupport", dependencies: ["CNuma"], cSettings: fastC, linkerSettings: [.linkedLibrary("numa")]),
        .systemLibrary(name: "CNuma", providers: [.apt(["libnuma-dev"])]),
        .systemLibrary(name: "CLoomZlib", providers: [.apt(["zlib1g-dev"])]),
        .systemLibrary(name: "CPng", providers: [.apt(["libpng-dev"])]),
        .systemLibrary(name: "CMPI", pkgConfig: "ompi-c", providers: [.apt(["libopenmpi-dev"])]),
        .target(
            name: "CLoomMPI", dependencies: [.target(name: "CMPI", condition: .when(traits: ["MPI"]))],
            cSettings: fastC + [.define("LOOM_MPI", .when(traits: ["MPI"]))]),
        .target(name: "LoomKernelTypes", swiftSettings: fastSwift),
        .target(name: "LoomKernelsAVX2", dependencies: ["LoomKernelTypes"], swiftSettings: swiftFlags(cpu: baseCPU)),
        .target(
            name: "LoomKernelsAVX512", dependencies: ["LoomKernelTypes"],
            swiftSettings: swiftFlags(cpu: wideCPU, defines: ["LOOM_AVX512"])),
        .target(
            name: "LoomKernels", dependencies: ["LoomKernelTypes", "LoomKernelsAVX2", "LoomKernelsAVX512"],
            swiftSettings: fastSwift),
        .target(name: "LoomNN", dependencies: ["LoomKernels"], swiftSettings: fastSwift),
        .target(
            name: "LoomData", dependencies: ["LoomKernels", "CLoomZlib", "CPng", "ZIPFoundation"],
            swiftSettings: fastSwift),
        .target(name: "LoomConfig", dependencies: ["LoomNN", "LoomData", "Yams"], swiftSettings: fastSwift),
        .target(name: "LoomTape", dependencies: ["LoomKernels", "LoomNN"], swiftSettings: fastSwift),
        .target(
            name: "LoomEngine",
            dependencies: [
                "LoomKernels", "LoomNN", "LoomData", "LoomConfig", "CSupport", "CLoomMPI",
                .product(name: "Atomics", package: "swift-atomics"),
            ],
            swiftSettings: fastSwift),
        // One import for Swift programs: re-exports the public modules.
        .target(
            name: "Loom", dependencies: ["LoomEngine", "LoomNN", "LoomData", "LoomConfig", "LoomTape"],
            swiftSettings: fastSwift),
        .executableTarget(
            name: "loom",
            dependencies: ["Loom", .product(name: "ArgumentParser", package: "swift-argument-parser")],
            swiftSettings: fastSwift),
        // Scratch folders the tests make, removed when they exit.
        .target(name: "LoomTestSupport", path: "Tests/LoomTestSupport"),
        .testTarget(name: "LoomKernelsTests", dependencies: ["LoomKernels"], swiftSettings: fastSwift),
        .testTarget(name: "LoomNNTests", dependencies: ["LoomNN"], swiftSettings: fastSwift),
        .testTarget(
            name: "LoomTapeTests", dependencies: ["LoomTape", "LoomNN", "LoomKernels", "LoomEngine"],
            swiftSettings: fastSwift),
        .testTarget(
            name: "LoomDataTests", dependencies: ["LoomData", "ZIPFoundation", "LoomTestSupport"],
            swiftSettings: fastSwift),
        .testTarget(name: "LoomConfigTests", dependencies: ["LoomConfig"], swiftSettings: fastSwift),
        .testTarget(
            name: "LoomEngineTests", dependencies: ["LoomEngine", "LoomTestSupport"], swiftSettings: fastSwift),
        // The one-import API as a Swift program sees it.
        .testTarget(name: "LoomTests", dependencies: ["Loom"], swiftSettings: fastSwift),
        // Runs the built `loom` binary as a user would: exit codes, one-line errors, reports.
        .testTarget(
            name: "LoomCLITests", dependencies: ["loom", "LoomData", "LoomEngine", "LoomTestSupport"],
            swiftSettings: fastSwift),
    ]
)
