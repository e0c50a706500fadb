// swift-tools-version: 6.1
// Loom from Swift in about 20 lines: `swift run -c release` in this folder trains the book's MNIST model.
import PackageDescription

let package = Package(
    name: "Library",
    platforms: [.macOS(.v15)],
    dependencies: [.package(name: "Loom", path: "../..")],
    targets: [.executableTarget(name: "Library", dependencies: [.product(name: "Loom", package: "Loom")])]
)
