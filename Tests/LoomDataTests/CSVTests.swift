import Foundation
import Testing

@testable import LoomData

@Suite("CSV reader")
struct CSVTests {
    func table(_ text: String, _ options: CSVOptions = CSVOptions()) throws(DataError) -> CSVTable {
        let dir = tempDir()
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
        let dir = tempDir()
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
}
