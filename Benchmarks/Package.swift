// swift-tools-version: 6.1
// Loom's benchmarks with ordo-one's package-benchmark, kept out of the main package so its build and tests do
// not pay for the harness. Run from this folder:   swift package benchmark
import Foundation
import PackageDescription

// A path dependency's identity is its folder's name, which depends on where Loom was cloned.
let loomPackage = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
    .lastPathComponent

let package = Package(
    name: "LoomBenchmarks",
    platforms: [.macOS(.v15)],
    dependencies: [
        .package(path: ".."),
        .package(url: "https://github.com/ordo-one/benchmark", from: "1.38.1", traits: ["MallocInterposer"]),
    ],
    targets: [
        .executableTarget(
            name: "LoomBenchmarks",
            dependencies: [
                .product(name: "Benchmark", package: "benchmark"),
                .product(name: "LoomEngine", package: loomPackage),
            ],
            path: "Benchmarks/LoomBenchmarks",
            swiftSettings: [.unsafeFlags(["-target-cpu", "native"])],
            plugins: [.plugin(name: "BenchmarkPlugin", package: "benchmark")])
    ]
)
