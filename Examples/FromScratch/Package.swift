// swift-tools-version: 6.1
// Deep Learning with Python ch. 2's "reimplementing our first example from scratch", in Swift on Loom's
// GradientTape: `swift run -c release FromScratch` in this folder (see main.swift for the options).
import PackageDescription

let package = Package(
    name: "FromScratch",
    platforms: [.macOS(.v15)],
    dependencies: [.package(name: "Loom", path: "../..")],
    targets: [.executableTarget(name: "FromScratch", dependencies: [.product(name: "Loom", package: "Loom")])]
)
