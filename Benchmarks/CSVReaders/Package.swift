// swift-tools-version: 6.1
// Loom's CSV reader against two well-kept Swift CSV libraries, on one file of numbers: yaslab/CSV.swift 2.5.2
// and swiftcsv/SwiftCSV 0.10.0. Each parses the file into float32 samples and class labels, as a data set needs
// them. Kept out of the main package (Loom does not depend on either). Run from this folder:
//     swift run -c release CSVReaders FILE.csv [repeats]
import Foundation
import PackageDescription

// A path dependency's identity is its folder's name, which depends on where Loom was cloned.
let loomPackage = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
    .deletingLastPathComponent().lastPathComponent

let package = Package(
    name: "CSVReaders",
    platforms: [.macOS(.v15)],
    dependencies: [
        .package(path: "../.."),
        .package(url: "https://github.com/yaslab/CSV.swift", exact: "2.5.2"),
        .package(url: "https://github.com/swiftcsv/SwiftCSV", exact: "0.10.0"),
    ],
    targets: [
        .executableTarget(
            name: "CSVReaders",
            dependencies: [
                .product(name: "Loom", package: loomPackage),
                .product(name: "CSV", package: "CSV.swift"),
                .product(name: "SwiftCSV", package: "SwiftCSV"),
            ])
    ]
)
