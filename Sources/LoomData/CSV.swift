// CSV: numeric tables with a class column, parsed in one pass over the file's bytes into one preallocated float
// array (no allocation per row or field). Fields may be quoted ("1.5", "a ""b"""); the delimiter is a comma, a
// semicolon or a tab (found from the first row when not given); the first row is a header when asked, or, by
// default, when one of its fields is not a number. Numbers are read as float64 and rounded to float32, as NumPy's
// loaders do (Clinger's exact fast path for up to 15 significant digits and powers of ten up to 22, the C
// library's strtod otherwise). A missing or non-numeric value is refused with file:line:column.
import Foundation

#if canImport(LoomKernelTypes)  // (the fuzzer compiles this file with AlignedBuffer.swift, outside the package)
    import LoomKernelTypes
#endif

/// How to read a CSV file: which columns hold the target, which the features, which a sample weight.
public struct CSVOptions: Sendable, Equatable {
    /// The target columns: header names, or indices (negative counts from the end; default: the last column).
    /// One column of class indices or names, or with `valueTargets` (always, for several columns) real values.
    public var targets: [String] = ["-1"]
    /// Read the targets as real values (regression; one-hot or soft class probabilities) instead of classes.
    public var valueTargets = false
    /// A column of sample weights (finite, ≥ 0), if any.
    public var weight: String?
    /// Feature columns (names or indices); nil: every column but the targets and the weight.
    public var features: [String]?
    /// true / false / nil (auto: a first row with a non-numeric field is a header).
    public var header: Bool?
    /// Lines skipped before the header or the first row (scikit-learn's files start with a count line).
    public var skipRows = 0
    /// nil: found from the first row.
    public var delimiter: UInt8?

    /// The defaults: the last column is the target, every other one a feature; header and delimiter detected.
    public init() {}

    /// The one target column (the first, when there are several).
    public var target: String {
        get { targets.first ?? "-1" }
        set { targets = [newValue] }
    }
}

/// A CSV file read as samples (float features) and class labels, with the class names when the class column
/// held text (sorted, as scikit-learn's LabelEncoder numbers them); or with real-valued targets; and weights.
public struct CSVTable: Sendable {
    /// Feature columns per row.
    public var features: Int
    /// Row-major samples (at least labels.count × features floats; the table's rows are parsed straight into
    /// the buffer a data set keeps).
    public var values: AlignedBuffer
    /// Class indices (all 0 with real-valued targets).
    public var labels: [Int32]
    /// Real-valued targets, `targetWidth` per row (empty for class targets).
    public var targets: [Float] = []
    /// Target values per row (0 with class targets).
    public var targetWidth = 0
    /// The sample weight column's values, if one was named.
    public var weights: [Float]?
    /// The class names in index order, when the class column held text.
    public var classNames: [String]?
    /// The header's column names, when the file has a header.
    public var columnNames: [String]?

    /// The samples as an array (a copy, for tests).
    public var valueArray: [Float] { Array(values.buffer.prefix(labels.count * features)) }
}

/// Reads a CSV file (raw or gzip).
public func readCSV(path: String, options: CSVOptions, hint: String = "") throws(DataError) -> CSVTable {
    guard FileManager.default.fileExists(atPath: path) else {
        throw .missingFile(path, hint: hint.isEmpty ? "check the path" : hint)
    }
    let mapped: Data
    do { mapped = try Data(contentsOf: URL(fileURLWithPath: path), options: .alwaysMapped) } catch {
        throw .unreadable(path, reason: error.localizedDescription)
    }
    if mapped.count >= 2 && mapped[0] == 0x1f && mapped[1] == 0x8b {
        let inflated = try gunzip([UInt8](mapped), path: path)
        return try inflated.withUnsafeBufferPointer { b throws(DataError) in
            try parseCSV(b, path: path, options: options)
        }
    }
    do {
        return try mapped.withUnsafeBytes { raw in
            try parseCSV(raw.bindMemory(to: UInt8.self), path: path, options: options)
        }
    } catch let error as DataError { throw error } catch { throw .unreadable(path, reason: "\(error)") }
}

/// Parses CSV bytes (already decompressed).
public func parseCSV(_ bytes: UnsafeBufferPointer<UInt8>, path: String, options: CSVOptions) throws(DataError)
    -> CSVTable
{
    var reader = CSVReader(bytes, path: path)
    for _ in 0..<options.skipRows { reader.skipLine() }
    reader.skipBlankLines()
    guard !reader.atEnd else { throw .mismatch(path, reason: "holds no rows") }
    let delimiter = options.delimiter ?? reader.guessDelimiter()
    reader.delimiter = delimiter
    // The first row: a header, or data.
    let firstLine = reader.line
    let first = reader.rowFields()
    let numeric = first.allSatisfy { parseNumber($0) != nil }
    let hasHeader = options.header ?? !numeric
    let columns = first.count
    let names = hasHeader ? first.map(text) : nil
    func column(_ spec: String, what: String) throws(DataError) -> Int {
        if let i = Int(spec) {
            let c = i < 0 ? columns + i : i
            guard (0..<columns).contains(c) else {
                throw .mismatch(path, reason: "the \(what) column \(spec) is outside the \(columns) columns")
            }
            return c
        }
        guard let names, let c = names.firstIndex(of: spec) else {
            throw .mismatch(
                path,
                reason: names == nil
                    ? "the \(what) column '\(spec)' needs a header row; give its index instead"
                    : "no column named '\(spec)' (columns: \(names!.joined(separator: ", ")))")
        }
        return c
    }
    var targetColumns: [Int] = []
    for t in options.targets { targetColumns.append(try column(t, what: "target")) }
    let weightColumn = try options.weight.map { w throws(DataError) in try column(w, what: "sample weight") }
    let valueTargets = options.valueTargets || targetColumns.count != 1
    var featureColumns: [Int] = []
    if let wanted = options.features {
        for f in wanted { featureColumns.append(try column(f, what: "feature")) }
    } else {
        featureColumns = (0..<columns).filter { !targetColumns.contains($0) && $0 != weightColumn }
    }
    guard !featureColumns.isEmpty else { throw .mismatch(path, reason: "no feature columns besides the target") }
    // Which column feeds which feature (-1: unused, -2: the class target, -3 - k: extra value k, the real-valued
    // targets first, then the weight).
    var role = [Int](repeating: -1, count: columns)
    for (k, c) in featureColumns.enumerated() { role[c] = k }
    if valueTargets {
        for (k, c) in targetColumns.enumerated() { role[c] = -3 - k }
    } else {
        role[targetColumns[0]] = -2
    }
    let targetWidth = valueTargets ? targetColumns.count : 0
    if let weightColumn { role[weightColumn] = -3 - targetWidth }
    let extraWidth = targetWidth + (weightColumn == nil ? 0 : 1)
    // One preallocated array: rows counted first (newlines), then filled in place.
    let rowsAtMost = reader.remainingLines + (hasHeader ? 0 : 1)
    let width = featureColumns.count
    let values = AlignedBuffer(count: rowsAtMost * width, zeroed: false)
    let extras = UnsafeMutablePointer<Float>.allocate(capacity: max(1, rowsAtMost * extraWidth))
    defer { extras.deallocate() }
    var numericLabels: [Double] = []
    numericLabels.reserveCapacity(rowsAtMost)
    var textLabels: [String] = []
    var rows = 0
    do {
        let out = values.buffer
        /// Stores one row's fields; `line` for messages.
        func store(_ fields: [UnsafeBufferPointer<UInt8>], line: Int) throws(DataError) {
            guard fields.count == columns else {
                throw .corrupt(path, reason: "line \(line) has \(fields.count) fields, the first row \(columns)")
            }
            for (c, field) in fields.enumerated() where role[c] != -1 {
                if let v = parseNumber(field), v.isFinite || role[c] == -2 {
                    if role[c] >= 0 {
                        out[rows * width + role[c]] = Float(v)
                    } else if role[c] <= -3 {
                        extras[rows * extraWidth - 3 - role[c]] = Float(v)
                    } else if textLabels.isEmpty {
                        numericLabels.append(v)
                    } else {
                        textLabels.append(text(field))
                    }
                    continue
                }
                let value = text(field)
                let missing = value.isEmpty || ["na", "nan", "null", "none", "?"].contains(value.lowercased())
                if role[c] == -2 && !missing {
                    // A class column of names: the numbers seen so far were names too.
                    if textLabels.isEmpty { textLabels = numericLabels.map { formatLabel($0) } }
                    textLabels.append(value)
                    continue
                }
                let name = names.map { " ('\($0[c])')" } ?? ""
                throw .corrupt(
                    path,
                    reason: missing
                        ? "line \(line), column \(c + 1)\(name): a missing value; fill or drop missing values first"
                        : "line \(line), column \(c + 1)\(name): '\(value)' is not a number")
            }
            if valueTargets { numericLabels.append(0) }  // (no class column: every label 0)
            rows += 1
        }
        if !hasHeader { try store(first, line: firstLine) }
        var fields: [UnsafeBufferPointer<UInt8>] = []
        fields.reserveCapacity(columns)
        let p = bytes.baseAddress!
        let roles = UnsafeMutablePointer<Int>.allocate(capacity: columns)
        defer { roles.deallocate() }
        for c in 0..<columns { roles[c] = role[c] }
        // Large files of plain numbers: the rows parsed by several threads at once, each a range of lines.
        if textLabels.isEmpty, !reader.atEnd, bytes.count - reader.position >= 2 * minimumPart {
            // (The class values go straight into the labels' array, which has room for every line.)
            let before = numericLabels.count
            numericLabels.append(contentsOf: repeatElement(0, count: rowsAtMost - before))
            let parsed = numericLabels.withUnsafeMutableBufferPointer { labels in
                parallelFastRows(
                    p, from: reader.position, to: bytes.count, columns: columns, role: roles, delimiter: delimiter,
                    into: out.baseAddress! + rows * width, width: width, extras: extras + rows * extraWidth,
                    extraWidth: extraWidth, labels: labels.baseAddress! + before, capacity: rowsAtMost - rows)
            }
            numericLabels.removeLast(rowsAtMost - before - (parsed ?? 0))
            if let parsed {
                rows += parsed
                reader.position = bytes.count
            }
        }
        while true {
            reader.skipBlankLines()
            if reader.atEnd { break }
            // Most rows are plain numbers: parsed straight from the bytes into place. Anything else (quotes,
            // text, an error to report) takes the general path from the row's start.
            if textLabels.isEmpty, rows < rowsAtMost,
                let (end, label) = fastRow(
                    p, from: reader.position, to: bytes.count, columns: columns, role: roles, delimiter: delimiter,
                    into: out.baseAddress! + rows * width, extras: extras + rows * extraWidth)
            {
                numericLabels.append(label)
                rows += 1
                reader.position = end
                reader.line += 1
                continue
            }
            let line = reader.line
            reader.rowFields(into: &fields)
            try store(fields, line: line)
        }
    }
    var labels: [Int32]
    var classNames: [String]?
    if !textLabels.isEmpty {
        let names = Array(Set(textLabels)).sorted()
        let index = Dictionary(uniqueKeysWithValues: names.enumerated().map { ($1, Int32($0)) })
        labels = textLabels.map { index[$0]! }
        classNames = names
    } else {
        labels = []
        labels.reserveCapacity(numericLabels.count)
        for (i, v) in numericLabels.enumerated() {
            guard v >= 0, v < Double(Int32.max), v.rounded() == v else {
                throw .mismatch(
                    path,
                    reason: v.rounded() != v
                        ? "row \(i + 1) has the real-valued target \(v), but the loss is a classifier's (class indices 0, 1, 2, … or names); for regression use mean_squared_error, mean_absolute_error or huber, or set data.targets: values"
                        : "row \(i + 1) has the class \(v); class indices must be 0 … 2³¹−2")
            }
            labels.append(Int32(v))
        }
    }
    guard rows > 0 else { throw .mismatch(path, reason: "holds a header but no rows") }
    let columnNames = names.map { n in featureColumns.map { n[$0] } }
    var table = CSVTable(
        features: width, values: values, labels: labels, classNames: classNames, columnNames: columnNames)
    if extraWidth > 0 {
        let all = UnsafeBufferPointer(start: extras, count: rows * extraWidth)
        table.targetWidth = targetWidth
        table.targets =
            targetWidth == 0
            ? [] : (0..<rows * targetWidth).map { all[$0 / targetWidth * extraWidth + $0 % targetWidth] }
        if weightColumn != nil {
            let weights = (0..<rows).map { all[$0 * extraWidth + targetWidth] }
            if let bad = weights.firstIndex(where: { $0 < 0 }) {
                throw .mismatch(
                    path,
                    reason: "row \(bad + 1) has the sample weight \(weights[bad]); weights must be 0 or more")
            }
            table.weights = weights
        }
    }
    return table
}

/// A numeric class as the text it was written as (1, not 1.0); any number, inf included.
/// (Found by the fuzzer: Int(v) trapped on an infinite class before a text class followed it.)
/// One row of plain numeric fields parsed in place: feature k of `role` into out[k], extra value k (real-valued
/// targets, weight) into extras[k], the class target returned; and
/// where the next line starts. Nil (nothing written that matters) when any field is not a plain finite number
/// or the row has another number of fields.
@inline(__always)
func fastRow(
    _ p: UnsafePointer<UInt8>, from start: Int, to n: Int, columns: Int, role: UnsafePointer<Int>, delimiter: UInt8,
    into out: UnsafeMutablePointer<Float>, extras: UnsafeMutablePointer<Float>
) -> (Int, Double)? {
    var i = start
    var label = 0.0
    for c in 0..<columns {
        while i < n && p[i] == 32 { i += 1 }
        guard let (v, end) = scanNumber(p, from: i, to: n) else { return nil }
        i = end
        while i < n && (p[i] == 32 || p[i] == 13) { i += 1 }
        if c < columns - 1 {
            guard i < n && p[i] == delimiter else { return nil }
        } else {
            guard i == n || p[i] == 10 else { return nil }
        }
        i += 1
        let r = role[c]
        if r >= 0 { out[r] = Float(v) } else if r == -2 { label = v } else if r <= -3 { extras[-3 - r] = Float(v) }
    }
    return (min(i, n), label)
}

/// The fewest bytes a parse thread is given (fewer are parsed in order).
let minimumPart = 8 << 20

/// Parses every line from `start` to `n` with `fastRow` on several threads at once, each thread a range of whole
/// lines, into rows 0, 1, … of `out` and `extras`, and each row's class value into `labels`, blank lines
/// skipped; returns the row count. Nil when there is one CPU, or when any line needs the general path (quotes,
/// text, an error to report): the caller then parses them all in order, overwriting what was written.
func parallelFastRows(
    _ p: UnsafePointer<UInt8>, from start: Int, to n: Int, columns: Int, role: UnsafePointer<Int>, delimiter: UInt8,
    into out: UnsafeMutablePointer<Float>, width: Int, extras: UnsafeMutablePointer<Float>, extraWidth: Int,
    labels: UnsafeMutablePointer<Double>, capacity: Int
) -> Int? {
    let parts = min(ProcessInfo.processInfo.activeProcessorCount, (n - start) / minimumPart, 64)
    guard parts >= 2 else { return nil }
    // Cut points at line starts, and each part's line count: where its rows go.
    var cuts = [start]
    for k in 1..<parts {
        var c = max(cuts[k - 1], start + (n - start) * k / parts)
        while c < n && p[c - 1] != 10 { c += 1 }
        cuts.append(c)
    }
    cuts.append(n)
    let counts = UnsafeMutablePointer<Int>.allocate(capacity: 2 * parts)  // lines per part, then rows parsed
    defer { counts.deallocate() }
    let job = ParseParts(
        bytes: p, cuts: cuts, columns: columns, role: role, delimiter: delimiter, out: out, width: width,
        extras: extras, extraWidth: extraWidth, labels: labels, counts: counts)
    DispatchQueue.concurrentPerform(iterations: parts) { k in job.countLines(k) }
    var firstRow = [0]
    for k in 0..<parts { firstRow.append(firstRow[k] + counts[k]) }
    guard firstRow[parts] <= capacity else { return nil }
    let rowsFrom = firstRow
    DispatchQueue.concurrentPerform(iterations: parts) { k in job.parse(k, firstRow: rowsFrom[k]) }
    let parsed = (0..<parts).map { counts[parts + $0] }
    guard parsed.allSatisfy({ $0 >= 0 }) else { return nil }
    // Close the gaps that blank lines left between the parts' rows.
    var rows = parsed[0]
    for k in 1..<parts where parsed[k] > 0 {
        if firstRow[k] != rows {
            (out + rows * width).update(from: out + firstRow[k] * width, count: parsed[k] * width)
            (extras + rows * extraWidth).update(from: extras + firstRow[k] * extraWidth, count: parsed[k] * extraWidth)
            (labels + rows).update(from: labels + firstRow[k], count: parsed[k])
        }
        rows += parsed[k]
    }
    return rows
}

/// One parallel parse: the bytes, where each part starts, and where rows go. Shared by the parse threads because
/// part k reads only bytes cuts[k]..<cuts[k+1] and writes only its own rows (of `out`, `extras`, `labels`, which
/// the line counts keep disjoint) and `counts[k]`, `counts[parts + k]`; the caller reads them after
/// `concurrentPerform` returns.
struct ParseParts: @unchecked Sendable {
    let bytes: UnsafePointer<UInt8>
    let cuts: [Int]
    let columns: Int
    let role: UnsafePointer<Int>
    let delimiter: UInt8
    let out: UnsafeMutablePointer<Float>
    let width: Int
    let extras: UnsafeMutablePointer<Float>
    let extraWidth: Int
    let labels: UnsafeMutablePointer<Double>
    let counts: UnsafeMutablePointer<Int>

    var parts: Int { cuts.count - 1 }

    /// counts[k]: the lines of part k (newlines, plus a last line without one).
    func countLines(_ k: Int) {
        let (start, end) = (cuts[k], cuts[k + 1])
        var count = 0
        var q = UnsafeRawPointer(bytes + start)
        let stop = UnsafeRawPointer(bytes + end)
        while q < stop, let hit = memchr(q, 10, stop - q) {
            count += 1
            q = UnsafeRawPointer(hit) + 1
        }
        counts[k] = count + (end > start && bytes[end - 1] != 10 ? 1 : 0)
    }

    /// Parses part k's lines into rows firstRow…; counts[parts + k]: the rows parsed, or -1 when a line needs the
    /// general path.
    func parse(_ k: Int, firstRow: Int) {
        counts[parts + k] = -1
        var i = cuts[k]
        var row = firstRow
        let end = cuts[k + 1]
        while i < end {
            var b = i  // a blank line (spaces, tabs, CR) is skipped, as the general path does
            while b < end && (bytes[b] == 32 || bytes[b] == 13 || bytes[b] == 9) { b += 1 }
            if b == end || bytes[b] == 10 {
                i = b + 1
                continue
            }
            guard
                let (next, label) = fastRow(
                    bytes, from: i, to: end, columns: columns, role: role, delimiter: delimiter,
                    into: out + row * width, extras: extras + row * extraWidth)
            else { return }
            labels[row] = label
            row += 1
            i = next
        }
        counts[parts + k] = row - firstRow
    }
}

func formatLabel(_ v: Double) -> String { v.isFinite && v.rounded() == v && abs(v) < 1e15 ? String(Int(v)) : String(v) }

/// A field as text, doubled quotes undoubled.
func text(_ field: UnsafeBufferPointer<UInt8>) -> String {
    String(decoding: field, as: UTF8.self).replacingOccurrences(of: "\"\"", with: "\"")
}

/// A cursor over CSV bytes: lines, fields (quotes removed, surrounding spaces trimmed).
struct CSVReader {
    let bytes: UnsafeBufferPointer<UInt8>
    let path: String
    var position = 0
    var line = 1
    var delimiter: UInt8 = UInt8(ascii: ",")

    init(_ bytes: UnsafeBufferPointer<UInt8>, path: String) {
        self.bytes = bytes
        self.path = path
    }

    var atEnd: Bool { position >= bytes.count }

    /// Lines left from here (newlines, plus a last line without one).
    var remainingLines: Int {
        guard position < bytes.count, let base = bytes.baseAddress else { return 0 }
        var n = 0
        var p = UnsafeRawPointer(base + position)
        let end = UnsafeRawPointer(base + bytes.count)
        while p < end, let hit = memchr(p, 10, end - p) {
            n += 1
            p = UnsafeRawPointer(hit) + 1
        }
        if bytes[bytes.count - 1] != 10 { n += 1 }
        return n
    }

    mutating func skipLine() {
        while position < bytes.count && bytes[position] != 10 { position += 1 }
        if position < bytes.count {
            position += 1
            line += 1
        }
    }

    mutating func skipBlankLines() {
        while position < bytes.count {
            var p = position
            while p < bytes.count && (bytes[p] == 32 || bytes[p] == 13 || bytes[p] == 9) { p += 1 }
            guard p < bytes.count else {
                position = p
                return
            }
            guard bytes[p] == 10 else { return }
            position = p + 1
            line += 1
        }
    }

    /// The most frequent of comma, semicolon and tab in the current line, outside quotes.
    func guessDelimiter() -> UInt8 {
        var counts: [UInt8: Int] = [44: 0, 59: 0, 9: 0]
        var quoted = false
        var p = position
        while p < bytes.count && (bytes[p] != 10 || quoted) {
            if bytes[p] == 34 { quoted.toggle() } else if !quoted, counts[bytes[p]] != nil { counts[bytes[p]]! += 1 }
            p += 1
        }
        return counts.max { a, b in a.value < b.value || (a.value == b.value && a.key > b.key) }!.key
    }

    mutating func rowFields() -> [UnsafeBufferPointer<UInt8>] {
        var fields: [UnsafeBufferPointer<UInt8>] = []
        rowFields(into: &fields)
        return fields
    }

    /// The fields of the current line, and moves to the next.
    mutating func rowFields(into fields: inout [UnsafeBufferPointer<UInt8>]) {
        fields.removeAll(keepingCapacity: true)
        let base = bytes.baseAddress!
        while true {
            var start = position
            while start < bytes.count && bytes[start] == 32 { start += 1 }
            var end: Int
            if start < bytes.count && bytes[start] == 34 {  // quoted
                // The field is what lies between the quotes; a doubled quote inside stays doubled (no number
                // holds one; `text` undoubles it for class names).
                var p = start + 1
                while p < bytes.count {
                    if bytes[p] == 34 {
                        if p + 1 < bytes.count && bytes[p + 1] == 34 {
                            p += 2
                            continue
                        }
                        break
                    }
                    if bytes[p] == 10 { line += 1 }
                    p += 1
                }
                fields.append(UnsafeBufferPointer(start: base + start + 1, count: max(0, p - start - 1)))
                end = min(p + 1, bytes.count)
                while end < bytes.count && bytes[end] != delimiter && bytes[end] != 10 { end += 1 }
            } else {
                end = start
                while end < bytes.count && bytes[end] != delimiter && bytes[end] != 10 { end += 1 }
                var last = end
                while last > start && (bytes[last - 1] == 32 || bytes[last - 1] == 13) { last -= 1 }
                fields.append(UnsafeBufferPointer(start: base + start, count: last - start))
            }
            position = end
            if position < bytes.count && bytes[position] == delimiter {
                position += 1
                continue
            }
            if position < bytes.count {  // newline
                position += 1
                line += 1
            }
            return
        }
    }
}

/// 10^e for 0 ≤ e ≤ 22, each exact in a Double (a switch: no lazily initialized global on the hot path).
@inline(__always)
func exactPower(_ e: Int) -> Double {
    switch e {
    case 0: 1e0
    case 1: 1e1
    case 2: 1e2
    case 3: 1e3
    case 4: 1e4
    case 5: 1e5
    case 6: 1e6
    case 7: 1e7
    case 8: 1e8
    case 9: 1e9
    case 10: 1e10
    case 11: 1e11
    case 12: 1e12
    case 13: 1e13
    case 14: 1e14
    case 15: 1e15
    case 16: 1e16
    case 17: 1e17
    case 18: 1e18
    case 19: 1e19
    case 20: 1e20
    case 21: 1e21
    default: 1e22
    }
}

/// A decimal number (optional sign, digits, fraction, exponent) filling the whole field, or nil (strtod reads
/// what the fast path does not: long mantissas, large exponents, inf).
@inline(__always)
func parseNumber(_ field: UnsafeBufferPointer<UInt8>) -> Double? {
    guard let base = field.baseAddress, field.count > 0 else { return nil }
    guard let (v, end) = scanNumber(base, from: 0, to: field.count), end == field.count else {
        return slowNumber(field)
    }
    return v
}

/// Reads a number from p[i...] up to `n`: its value and where it stopped, or nil when it is no plain decimal
/// number or the fast path would not be exact (the caller then asks strtod).
@inline(__always)
func scanNumber(_ p: UnsafePointer<UInt8>, from start: Int, to n: Int) -> (Double, Int)? {
    var i = start
    var negative = false
    if i < n && (p[i] == 45 || p[i] == 43) {  // - +
        negative = p[i] == 45
        i += 1
    }
    var mantissa: UInt64 = 0
    var digits = 0
    var exponent = 0
    var sawDigit = false
    while i < n, p[i] &- 48 < 10 {
        if digits < 19 {
            mantissa = mantissa &* 10 &+ UInt64(p[i] &- 48)
            if mantissa > 0 { digits += 1 }
        } else {
            exponent += 1
        }
        sawDigit = true
        i += 1
    }
    if i < n && p[i] == 46 {  // .
        i += 1
        while i < n, p[i] &- 48 < 10 {
            if digits < 19 {
                mantissa = mantissa &* 10 &+ UInt64(p[i] &- 48)
                if mantissa > 0 { digits += 1 }
                exponent -= 1
            }
            sawDigit = true
            i += 1
        }
    }
    guard sawDigit else { return nil }
    if i < n && (p[i] == 101 || p[i] == 69) {  // e E
        i += 1
        var expNegative = false
        if i < n && (p[i] == 45 || p[i] == 43) {
            expNegative = p[i] == 45
            i += 1
        }
        var e = 0
        var expDigits = false
        while i < n, p[i] &- 48 < 10 {
            if e < 100_000 { e = e * 10 + Int(p[i] &- 48) }
            expDigits = true
            i += 1
        }
        guard expDigits else { return nil }
        exponent += expNegative ? -e : e
    }
    guard digits <= 15 && exponent >= -22 && exponent <= 22 else { return nil }
    var v = Double(Int64(bitPattern: mantissa))  // < 10^15: a signed conversion is one instruction
    v = exponent >= 0 ? v * exactPower(exponent) : v / exactPower(-exponent)
    return (negative ? -v : v, i)
}
/// strtod on a NUL-terminated copy (long mantissas, large exponents, inf); nil for anything it does not read
/// in full, and for NaN (a missing value, not a number).
func slowNumber(_ field: UnsafeBufferPointer<UInt8>) -> Double? {
    // Decimal digits, signs, points and exponents only (strtod would also read hex, "inf" and "nan").
    guard field.count < 128, field.allSatisfy({ $0 &- 48 < 10 || $0 == 43 || $0 == 45 || $0 == 46 || $0 | 32 == 101 })
    else { return nil }
    return withUnsafeTemporaryAllocation(of: CChar.self, capacity: field.count + 1) { buffer -> Double? in
        for (k, b) in field.enumerated() { buffer[k] = CChar(bitPattern: b) }
        buffer[field.count] = 0
        var end: UnsafeMutablePointer<CChar>?
        let v = strtod(buffer.baseAddress!, &end)
        guard let end, end - buffer.baseAddress! == field.count, !v.isNaN else { return nil }
        return v
    }
}
