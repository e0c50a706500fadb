import Foundation
import LoomTestSupport
import Testing

@testable import LoomData

@Suite("CSV reader")
struct CSVTests {
    func table(_ text: String, _ options: CSVOptions = CSVOptions()) throws(DataError) -> CSVTable {
        let dir = temporaryFolder("loom-data")
        write(Array(text.utf8), dir + "/t.csv")
        return try readCSV(path: dir + "/t.csv", options: options)
    }

    @Test("a header found by itself, named target and feature columns, quoted fields, class names sorted")
    func header() throws {
        var o = CSVOptions()
        o.target = "kind"
        o.features = ["b", "a"]
        let t = try table("a,b,\"kind\",c\n1,2.5,\"cat\",9\n-3e2, 4 ,dog,9\n\n0.5,\"1\",\"ca\"\"t\",0\n", o)
        #expect(t.features == 2 && t.valueArray == [2.5, 1, 4, -300, 1, 0.5])
        #expect(t.classNames == ["ca\"t", "cat", "dog"] && t.labels == [1, 2, 0])
        #expect(t.columnNames == ["b", "a"])
        // A class column of names after a number that is not finite (found by the fuzzer: a trap).
        #expect(try table("1;99e999\n2;x\n").classNames == ["inf", "x"])
    }

    @Test("no header, the last column by default, semicolons and tabs, CRLF, skipped lines, gzip")
    func noHeader() throws {
        var o = CSVOptions()
        o.skipRows = 1
        let expected: [Float] = [1, 2, 3, 4]
        for d in [",", ";", "\t"] {
            let t = try table("569,30,x,y\r\n1\(d)2\(d)0\r\n3\(d)4\(d)1\r\n", o)
            #expect(t.valueArray == expected && t.labels == [0, 1] && t.classNames == nil, "delimiter \(d)")
        }
        let dir = temporaryFolder("loom-data")
        write(Array("0.25,1\n0.5,0\n".utf8), dir + "/g.csv", gzip: true)
        let g = try readCSV(path: dir + "/g.csv.gz", options: CSVOptions())
        #expect(g.valueArray == [0.25, 0.5] && g.labels == [1, 0])
    }

    @Test("numbers: the exact fast path and strtod agree with Swift's own parser, as float64 then float32")
    func numbers() throws {
        let fields = [
            "0", "-0", "1.5", "+2", ".5", "5.", "1e3", "1E-3", "3.14159265358979", "123456789012345678901234",
            "1e-300", "2.2250738585072014e-308", "0.1", "1.7976931348623157e308", "6.02214076e23", "-7.5e-7",
        ]
        for f in fields {
            let parsed = Array(f.utf8).withUnsafeBufferPointer { parseNumber($0) }
            #expect(parsed == Double(f), "\(f)")
        }
        for bad in ["", "-", "1e", "1.2.3", "abc", "nan", "1,5", "--1", "0x10"] {
            #expect(Array(bad.utf8).withUnsafeBufferPointer { parseNumber($0) } == nil, "\(bad)")
        }
    }

    @Test("malformed tables: one line naming the file, the line and column, and what to do")
    func errors() {
        let cases: [(String, String)] = [
            ("a,b\n1,2\n3\n", "line 3 has 1 fields, the first row 2"),
            ("a,b\n1,2\n,1\n", "line 3, column 1 ('a'): a missing value"),
            ("a,b\n1,2\nNaN,1\n", "line 3, column 1 ('a'): a missing value"),
            ("a,b\n1,2\nx,1\n", "line 3, column 1 ('a'): 'x' is not a number"),
            ("a,b\n1,2.5\n", "real-valued target 2.5"),
            ("a,b\n1,-2\n", "class -2.0"),
            ("a,b\n", "holds a header but no rows"),
            ("\n\n", "holds no rows"),
        ]
        for (text, expected) in cases {
            #expect { try table(text) } throws: {
                "\($0)".contains(expected) && "\($0)".contains("t.csv") && !"\($0)".contains("\n")
            }
        }
        var o = CSVOptions()
        o.target = "z"
        #expect { try table("a,b\n1,2\n", o) } throws: { "\($0)".contains("no column named 'z' (columns: a, b)") }
        o.target = "5"
        #expect { try table("1,2\n", o) } throws: { "\($0)".contains("outside the 2 columns") }
        #expect { try readCSV(path: "/nonexistent.csv", options: CSVOptions()) } throws: {
            "\($0)".contains("no such file")
        }
    }

    @Test("real-valued targets (one or several columns) and a sample weight column, on the fast and general paths")
    func valueTargetsAndWeights() throws {
        var o = CSVOptions()
        o.targets = ["y1", "y2"]
        o.weight = "w"
        // Row 3 has a quoted field, so it takes the general path; the others the fast one.
        let t = try table("x,y1,w,y2,z\n1,0.5,2,-1,7\n2,1.5,0,3.25,8\n\"3\",2.5,0.5,4,9\n", o)
        #expect(t.features == 2 && t.valueArray == [1, 7, 2, 8, 3, 9])
        #expect(t.targetWidth == 2 && t.targets == [0.5, -1, 1.5, 3.25, 2.5, 4])
        #expect(t.weights == [2, 0, 0.5] && t.labels == [0, 0, 0])
        // One column as real values (regression).
        var r = CSVOptions()
        r.valueTargets = true
        let one = try table("1,2.5\n2,-0.75\n", r)
        #expect(one.targetWidth == 1 && one.targets == [2.5, -0.75] && one.weights == nil)
        // Classes with a weight column: the labels stay class indices.
        var c = CSVOptions()
        c.target = "0"
        c.weight = "-1"
        let classes = try table("1,5,0.25\n0,6,4\n", c)
        #expect(classes.labels == [1, 0] && classes.weights == [0.25, 4] && classes.valueArray == [5, 6])
        // Refused: a missing or non-finite target, a negative weight.
        for (text, expected) in [
            ("x,y1,w,y2,z\n1,,1,2,3\n", "line 2, column 2 ('y1'): a missing value"),
            ("x,y1,w,y2,z\n1,nan,1,2,3\n", "line 2, column 2 ('y1'): a missing value"),
            ("x,y1,w,y2,z\n1,2,-1,2,3\n", "row 1 has the sample weight -1.0; weights must be 0 or more"),
        ] {
            #expect { try table(text, o) } throws: { "\($0)".contains(expected) && "\($0)".contains("t.csv") }
        }
    }

    @Test(
        "a large file is parsed by several threads: the same rows as in order, blank lines anywhere, quotes fall back")
    func parallelParse() throws {
        // About 22 MB: more than two parse threads' minimum share, so both paths below run on 2 CPUs.
        let rows = 2_000_000
        var bytes: [UInt8] = []
        bytes.reserveCapacity(rows * 14)
        for i in 0..<rows {
            if i % 250_001 == 7 { bytes += Array(" \r\n\n".utf8) }  // blank lines, one in each part or so
            bytes += Array("\(i % 997),-\(i % 13).5,\(i % 3)\n".utf8)
        }
        func check(_ t: CSVTable) {
            #expect(t.labels.count == rows && t.features == 2)
            var ok = true
            for i in stride(from: 0, to: rows, by: 9_973) {
                ok =
                    ok && t.values.pointer[2 * i] == Float(i % 997)
                    && t.values.pointer[2 * i + 1] == -Float(i % 13) - 0.5
                ok = ok && t.labels[i] == Int32(i % 3)
            }
            #expect(ok && t.labels.last == Int32((rows - 1) % 3))
        }
        let dir = temporaryFolder("loom-data")
        write(bytes, dir + "/big.csv")
        check(try readCSV(path: dir + "/big.csv", options: CSVOptions()))
        // A quoted field near the end: the threads give up and the rows are parsed in order, with the same result.
        let at = bytes.count - 40
        let lineStart = bytes[..<at].lastIndex(of: 10)! + 1
        let quoted = Array(bytes[..<lineStart]) + Array("\"".utf8) + Array(bytes[lineStart...])
        var fixed = quoted
        if let comma = fixed[(lineStart + 1)...].firstIndex(of: 44) { fixed.insert(34, at: comma) }
        write(fixed, dir + "/quoted.csv")
        check(try readCSV(path: dir + "/quoted.csv", options: CSVOptions()))
        // An error past the first thread's share still names its line.
        var bad = bytes
        let badLine = bad[..<(bad.count - 100)].lastIndex(of: 10)! + 1
        bad[badLine] = UInt8(ascii: "x")
        write(bad, dir + "/bad.csv")
        let lineNumber = bad[..<badLine].filter { $0 == 10 }.count + 1
        #expect { try readCSV(path: dir + "/bad.csv", options: CSVOptions()) } throws: {
            "\($0)".contains("line \(lineNumber), column 1: 'x")
        }
    }
}
