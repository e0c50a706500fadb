// Parses one CSV file of numbers (features, then a class column) into float32 samples and int32 labels with three
// readers and prints the best of `repeats` wall times for each: Loom's (LoomData.readCSV), yaslab/CSV.swift
// (CSVReader over an InputStream, one [String] per row) and swiftcsv/SwiftCSV (the file as a String, rows
// enumerated as [String]). The two libraries hand out text fields, so each field is converted with Float(_:);
// the sums of the parsed values are printed to show the three agree.
import CSV
import Foundation
import Loom
import SwiftCSV

let arguments = CommandLine.arguments
guard arguments.count >= 2 else {
    print("usage: CSVReaders FILE.csv [repeats]")
    exit(2)
}
let path = arguments[1]
let repeats = arguments.count > 2 ? Int(arguments[2]) ?? 3 : 3

/// Samples and labels as a data set keeps them.
struct Parsed {
    var values: [Float] = []
    var labels: [Int32] = []
    var checksum: Double { values.reduce(0) { $0 + Double($1) } + labels.reduce(0) { $0 + Double($1) } }
}

/// One row of text fields into `parsed`: every field but the last a feature, the last the class.
func append(_ row: [String], to parsed: inout Parsed) {
    for field in row.dropLast() { parsed.values.append(Float(field) ?? .nan) }
    parsed.labels.append(Int32(row.last.flatMap { Float($0) } ?? -1))
}

func loom() throws -> Parsed {
    let table = try readCSV(path: path, options: CSVOptions())
    return Parsed(values: table.valueArray, labels: table.labels)
}

func yaslab() throws -> Parsed {
    guard let stream = InputStream(fileAtPath: path) else { throw CocoaError(.fileNoSuchFile) }
    let reader = try CSVReader(stream: stream)
    var parsed = Parsed()
    while let row = reader.next() { append(row, to: &parsed) }
    return parsed
}

func swiftCSV() throws -> Parsed {
    let csv = try EnumeratedCSV(url: URL(fileURLWithPath: path), delimiter: .comma, loadColumns: false)
    var parsed = Parsed()
    append(csv.header, to: &parsed)  // the file has no header row: SwiftCSV reads the first row as one
    for row in csv.rows { append(row, to: &parsed) }
    return parsed
}

/// Best-of-`repeats` seconds of `body` and its result.
func time(_ name: String, _ body: () throws -> Parsed) throws {
    var best = Double.infinity
    var result = Parsed()
    for _ in 0..<repeats {
        let start = Date()
        result = try body()
        best = min(best, Date().timeIntervalSince(start))
    }
    print(
        String(
            format: "%@  %8.3f s  (%d rows, checksum %.6e)", name as NSString, best, result.labels.count,
            result.checksum))
}

let size = (try? FileManager.default.attributesOfItem(atPath: path)[.size] as? Int) ?? 0
print(String(format: "%@: %.1f MB, best of %d", path, Double(size) / 1e6, repeats))
try time("Loom (LoomData)", loom)
try time("yaslab/CSV.swift 2.5.2", yaslab)
try time("SwiftCSV 0.10.0", swiftCSV)
