import Foundation
import XCTest
@testable import QKStore

/// The Parquet writer: its Thrift encoding against bytes worked out by hand from the compact
/// protocol's specification, and its files as two independent readers (pyarrow, DuckDB) see them.
final class ParquetTests: XCTestCase {
    // MARK: Thrift compact protocol

    func testZigzagAndVarint() {
        var w = ThriftCompactWriter()
        XCTAssertEqual([0, -1, 1, -2, 2, Int64(Int32.max), Int64(Int32.min)].map(w.zigzag),
                       [0, 1, 2, 3, 4, 4_294_967_294, 4_294_967_295])
        w.varint(0); w.varint(1); w.varint(127); w.varint(128); w.varint(300)
        XCTAssertEqual(w.bytes, [0x00, 0x01, 0x7F, 0x80, 0x01, 0xAC, 0x02])
    }

    func testStructFieldsHeadersListsAndNesting() {
        var w = ThriftCompactWriter()
        w.field(1, i32: 3)                       // delta 1, i32 (5): 0x15; zigzag 6
        w.field(3, string: "a")                  // delta 2, binary (8): 0x28; length 1; "a"
        w.field(4, bool: true)                   // delta 1, true (1): 0x11, no value byte
        w.field(5, bool: false)                  // delta 1, false (2): 0x12
        w.field(6) { $0.field(1, i64: -1) }      // 0x1C; inside, ids restart: 0x16 0x01; stop
        w.field(7, i64: 150)                     // after the nested struct, delta from 6: 0x16; 300 = AC 02
        w.field(40, i32: 1)                      // delta 33 > 15: type alone 0x05, zigzag(40) = 80, then 02
        w.field(41, i32List: [1, 2, 3])          // 0x19; list header size 3, i32: 0x35; 02 04 06
        w.field(42, stringList: Array(repeating: "", count: 15)) // 0x19; 15 ≥ 15: 0xF8 then 0x0F; 15 × 00
        w.stop()
        XCTAssertEqual(w.bytes, [0x15, 0x06, 0x28, 0x01, 0x61, 0x11, 0x12, 0x1C, 0x16, 0x01, 0x00,
                                 0x16, 0xAC, 0x02, 0x05, 0x50, 0x02, 0x19, 0x35, 0x02, 0x04, 0x06,
                                 0x19, 0xF8, 0x0F] + [UInt8](repeating: 0, count: 15) + [0x00])
    }

    func testListOfStructsRestartsIdsInEachElement() {
        var w = ThriftCompactWriter()
        w.field(2, structList: [1, 2]) { w, v in w.field(1, i32: Int32(v)) }
        w.stop()
        // 0x29 (delta 2, list); 0x2C (2 structs); each: 0x15 value 00; then the outer stop.
        XCTAssertEqual(w.bytes, [0x29, 0x2C, 0x15, 0x02, 0x00, 0x15, 0x04, 0x00, 0x00])
    }

    func testDefinitionLevelsHybridEncoding() {
        var mixed = DefinitionLevels(capacity: 8)
        for p in [true, false, true] { mixed.add(present: p) }
        var out: [UInt8] = []
        mixed.encode(into: &out)
        XCTAssertEqual(out, [0x02, 0, 0, 0, 0x03, 0x05])
        var full = DefinitionLevels(capacity: 8)
        for _ in 0..<200 { full.add(present: true) }
        out = []
        full.encode(into: &out)
        // One RLE run: header 200 << 1 = 400 = 0x90 0x03, value 1.
        XCTAssertEqual(out, [0x03, 0, 0, 0, 0x90, 0x03, 0x01])
    }

    // MARK: Files read back by pyarrow and DuckDB

    static let allTypes = [
        ParquetColumn("i32", .int32), ParquetColumn("i32n", .int32, nullable: true),
        ParquetColumn("i64", .int64), ParquetColumn("i64n", .int64, nullable: true),
        ParquetColumn("f32", .float), ParquetColumn("f32n", .float, nullable: true),
        ParquetColumn("f64", .double), ParquetColumn("f64n", .double, nullable: true),
        ParquetColumn("s", .string), ParquetColumn("sn", .string, nullable: true),
    ]
    static let texts = ["", "héllo ✓", "日本語", "plain", "🙂 emoji"]

    /// Rows `rows` of the every-type table, column by column (nil for a null).
    static func table(_ rows: Range<Int>) -> [[Any?]] {
        func column(_ value: (Int) -> Any?) -> [Any?] { rows.map(value) }
        return [column { Int32($0 * 7 - 5000) },
                column { $0 % 3 == 0 ? nil : Int32(-$0) },
                column { Int64($0) * 1_000_000_007 - 7 },
                column { $0 % 5 == 0 ? nil : Int64($0) - 3 },
                column { Float($0) * 0.25 - 100 },
                column { $0 % 4 == 1 ? nil : Float($0) / 3 },
                column { Double($0) * 1e-3 },
                column { $0 % 2 == 0 ? nil : -Double($0) * 1.5 },
                column { texts[$0 % 5] + ($0 % 5 == 0 ? "" : "\($0)") },
                column { $0 % 7 == 0 ? nil : ($0 == 1 ? "" : "s\($0)é") }]
    }

    static func columnData(_ rows: Range<Int>) -> [ParquetColumnData] {
        let t = table(rows)
        return [.int32(t[0].map { $0 as! Int32 }), .nullableInt32(t[1].map { $0 as? Int32 }),
                .int64(t[2].map { $0 as! Int64 }), .nullableInt64(t[3].map { $0 as? Int64 }),
                .float(t[4].map { $0 as! Float }), .nullableFloat(t[5].map { $0 as? Float }),
                .double(t[6].map { $0 as! Double }), .nullableDouble(t[7].map { $0 as? Double }),
                .string(t[8].map { $0 as! String }), .nullableString(t[9].map { $0 as? String })]
    }

    /// A value as JSON brings it back from Python: numbers as Double (exact for these), text as
    /// String; a float comes as "f:" and its repr.
    static func comparable(_ v: Any?) -> AnyHashable? {
        switch v {
        case let x as String where x.hasPrefix("f:"): AnyHashable(Double(x.dropFirst(2))!)
        case let x as Int32: AnyHashable(Double(x))
        case let x as Int64: AnyHashable(Double(x))
        case let x as Float: AnyHashable(Double(x))
        case let x as Double: AnyHashable(x)
        case let x as NSNumber: AnyHashable(x.doubleValue)
        case let x as String: AnyHashable(x)
        default: nil
        }
    }

    func testEveryTypeNullsRowGroupsAndPagesReadBackByPyarrowAndDuckDB() throws {
        let dir = temporaryDirectory()
        let path = dir.appendingPathComponent("t.parquet").path
        // Small pages and row groups so every chunk has several pages and an append is split.
        let writer = try ParquetWriter(path: path, columns: Self.allTypes, maxRowsPerRowGroup: 1500, pageBytes: 512)
        let batches = [0..<1000, 1000..<1001, 1001..<4001]
        for b in batches { try writer.append(rowGroup: Self.columnData(b)) }
        try writer.append(rowGroup: Self.columnData(4001..<4001))   // empty: no row group
        XCTAssertFalse(FileManager.default.fileExists(atPath: path), "the file appears only when finished")
        try writer.finish(keyValueMetadata: [("qkdb.test", "every type"), ("note", "é")])
        XCTAssertTrue(ParquetWriter.isOurs(path))
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: dir.path), ["t.parquet"])

        let groups = [0..<1000, 1000..<1001, 1001..<2501, 2501..<4001]
        let script = """
        import json, sys, pyarrow.parquet as pq, duckdb
        f = pq.ParquetFile(sys.argv[1])
        t = f.read()
        md = f.metadata
        stats = [[(lambda s: {"has": s.has_min_max, "min": s.min if s.has_min_max else None,
                               "max": s.max if s.has_min_max else None, "nulls": s.null_count})(md.row_group(g).column(c).statistics)
                  for c in range(md.num_columns)] for g in range(md.num_row_groups)]
        con = duckdb.connect()
        rows = con.execute("select * from read_parquet(?)", [sys.argv[1]]).fetchall()
        dtypes = [r[1] for r in con.execute("describe select * from read_parquet(?)", [sys.argv[1]]).fetchall()]
        # Floats travel as their repr: JSON parsers may round a double's last digit.
        def exact(v):
            if isinstance(v, float): return "f:" + repr(v)
            if isinstance(v, (list, tuple)): return [exact(x) for x in v]
            if isinstance(v, dict): return {k: exact(x) for k, x in v.items()}
            return v
        print(json.dumps(exact({"rows": t.num_rows, "types": [str(f.type) for f in t.schema],
                          "nullable": [f.nullable for f in t.schema], "values": t.to_pydict(),
                          "group_rows": [md.row_group(g).num_rows for g in range(md.num_row_groups)],
                          "stats": stats, "created_by": md.created_by,
                          "kv": {k.decode(): v.decode() for k, v in (t.schema.metadata or {}).items()},
                          "duckdb_rows": rows, "duckdb_types": dtypes})))
        """
        let r = try python(["-c", script, path])
        XCTAssertEqual(r.status, 0, r.stderr)
        let out = try XCTUnwrap(JSONSerialization.jsonObject(with: r.stdout) as? [String: Any])

        let truth = Self.table(0..<4001)
        let names = Self.allTypes.map(\.name)
        XCTAssertEqual(out["rows"] as? Int, 4001)
        XCTAssertEqual(out["types"] as? [String], ["int32", "int32", "int64", "int64", "float", "float", "double", "double", "string", "string"])
        XCTAssertEqual(out["nullable"] as? [Bool], Self.allTypes.map(\.nullable))
        XCTAssertEqual(out["duckdb_types"] as? [String], ["INTEGER", "INTEGER", "BIGINT", "BIGINT", "FLOAT", "FLOAT", "DOUBLE", "DOUBLE", "VARCHAR", "VARCHAR"])
        XCTAssertEqual(out["group_rows"] as? [Int], groups.map(\.count))
        XCTAssertEqual(out["created_by"] as? String, "qkdb")
        XCTAssertEqual(out["kv"] as? [String: String], ["qkdb.test": "every type", "note": "é"])

        let values = try XCTUnwrap(out["values"] as? [String: [Any]])
        let duckRows = try XCTUnwrap(out["duckdb_rows"] as? [[Any]])
        XCTAssertEqual(duckRows.count, 4001)
        for (c, name) in names.enumerated() {
            let expected = truth[c].map(Self.comparable)
            XCTAssertEqual(values[name]?.map { Self.comparable($0 is NSNull ? nil : $0) }, expected, "pyarrow column \(name)")
            XCTAssertEqual(duckRows.map { Self.comparable($0[c] is NSNull ? nil : $0[c]) }, expected, "duckdb column \(name)")
        }

        let stats = try XCTUnwrap(out["stats"] as? [[[String: Any]]])
        XCTAssertEqual(stats.count, groups.count)
        for (g, rows) in groups.enumerated() {
            let part = Self.table(rows)
            for (c, name) in names.enumerated() {
                let s = stats[g][c]
                let present = part[c].compactMap(Self.comparable)
                XCTAssertEqual(s["nulls"] as? Int, part[c].count - present.count, "null count of \(name), group \(g)")
                XCTAssertEqual(s["has"] as? Bool, !present.isEmpty, "\(name), group \(g)")
                guard !present.isEmpty else { continue }
                let (lo, hi): (AnyHashable, AnyHashable)
                if let numbers = present as? [Double] {
                    (lo, hi) = (numbers.min()!, numbers.max()!)
                } else {
                    // Parquet orders strings by their UTF-8 bytes.
                    let texts = present.map { Array(($0 as! String).utf8) }
                    let order: ([UInt8], [UInt8]) -> Bool = { $0.lexicographicallyPrecedes($1) }
                    (lo, hi) = (String(decoding: texts.min(by: order)!, as: UTF8.self), String(decoding: texts.max(by: order)!, as: UTF8.self))
                }
                XCTAssertEqual(Self.comparable(s["min"]), lo, "min of \(name), group \(g)")
                XCTAssertEqual(Self.comparable(s["max"]), hi, "max of \(name), group \(g)")
            }
        }
    }

    func testFailedWriteLeavesNoFileAndForeignFilesAreKept() throws {
        let dir = temporaryDirectory()
        let path = dir.appendingPathComponent("t.parquet").path
        do {
            let writer = try ParquetWriter(path: path, columns: [ParquetColumn("x", .int32)])
            try writer.append(rowGroup: [.int32([1, 2, 3])])
            XCTAssertThrowsError(try writer.append(rowGroup: [.int64([1])]))   // wrong type
        }
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: dir.path), [])
        try Data("a,b\n".utf8).write(to: URL(fileURLWithPath: path))
        XCTAssertThrowsError(try ParquetWriter(path: path, columns: [ParquetColumn("x", .int32)]))
    }

    /// NaN is stored but left out of min/max (a page of NaN only has no bounds), and a zero
    /// bound is widened to cover both zeros (-0.0 below, +0.0 above), as the spec asks.
    func testFloatStatisticsLeaveOutNaNAndCoverBothZeros() throws {
        let path = temporaryDirectory().appendingPathComponent("f.parquet").path
        let writer = try ParquetWriter(path: path, columns: [ParquetColumn("a", .float), ParquetColumn("b", .double, nullable: true),
                                                            ParquetColumn("c", .double), ParquetColumn("d", .float)])
        try writer.append(rowGroup: [.float([.nan, 2, -1, .nan]), .nullableDouble([nil, .nan, nil, .nan]),
                                     .double([0, 0, 5, .nan]), .float([-3, 0, -0.0, -2])])
        try writer.finish()
        let r = try python(["-c", """
            import sys, pyarrow.parquet as pq
            m = pq.ParquetFile(sys.argv[1]).metadata.row_group(0)
            for c in range(4):
                s = m.column(c).statistics
                print(repr(s.min) if s.has_min_max else "-", repr(s.max) if s.has_min_max else "-", s.null_count)
            print(pq.read_table(sys.argv[1]).column("a").to_pylist())
            """, path])
        XCTAssertEqual(r.status, 0, r.stderr)
        XCTAssertEqual(String(decoding: r.stdout, as: UTF8.self), "-1.0 2.0 0\n- - 2\n-0.0 5.0 0\n-3.0 0.0 0\n[nan, 2.0, -1.0, nan]\n")
    }

    func testReplacesItsOwnEarlierFile() throws {
        let path = temporaryDirectory().appendingPathComponent("t.parquet").path
        for rows in [3, 5] {
            let writer = try ParquetWriter(path: path, columns: [ParquetColumn("x", .int64)])
            try writer.append(rowGroup: [.int64((0..<Int64(rows)).map { $0 })])
            try writer.finish()
        }
        let r = try python(["-c", "import sys, pyarrow.parquet as pq; print(pq.read_table(sys.argv[1]).num_rows)", path])
        XCTAssertEqual(String(decoding: r.stdout, as: UTF8.self), "5\n", r.stderr)
    }

    /// 2M rows of ten columns, written within a bound that holds even in a debug build on a busy
    /// machine, then counted and summed by DuckDB.
    func testTwoMillionRowsWrittenQuicklyAndReadByDuckDB() throws {
        let n = 2_000_000
        let dir = temporaryDirectory()
        let path = dir.appendingPathComponent("big.parquet").path
        let labels = (0..<1000).map { "feature \($0)" }
        let columns = [ParquetColumn("run", .int32), ParquetColumn("head", .int32), ParquetColumn("q", .int32),
                       ParquetColumn("k", .int32), ParquetColumn("pair", .int64), ParquetColumn("score", .float),
                       ParquetColumn("lift", .float), ParquetColumn("share", .double, nullable: true),
                       ParquetColumn("weight", .double), ParquetColumn("label", .string)]
        let batch = 1 << 20
        func data(_ rows: Range<Int>) -> [ParquetColumnData] {
            [.int32(rows.map { _ in 1 }), .int32(rows.map { Int32($0 % 12) }), .int32(rows.map { Int32($0 / 7 % 4096) }),
             .int32(rows.map { Int32($0 % 4096) }), .int64(rows.map { Int64($0) }), .float(rows.map { Float($0 % 1000) * 0.001 }),
             .float(rows.map { Float($0 % 333) }), .nullableDouble(rows.map { $0 % 10 == 0 ? nil : Double($0) * 0.5 }),
             .double(rows.map { Double($0 % 77) }), .string(rows.map { labels[$0 % 1000] })]
        }
        let batches = stride(from: 0, to: n, by: batch).map { data($0..<min($0 + batch, n)) }

        let start = Date()
        let writer = try ParquetWriter(path: path, columns: columns)
        for b in batches { try writer.append(rowGroup: b) }
        try writer.finish()
        let seconds = Date().timeIntervalSince(start)

        let size = (try FileManager.default.attributesOfItem(atPath: path)[.size] as? Int) ?? 0
        print("parquet: \(n) rows × 10 columns in \(String(format: "%.2f", seconds)) s (\(Int(Double(n) / seconds)) rows/s, \(size) bytes)")
        XCTAssertLessThan(seconds, 30, "2M rows take about 2 s in a debug build on 2 busy cores")

        let r = try python(["-c", """
            import sys, duckdb
            print(duckdb.connect().execute("select count(*), sum(pair), sum(share), count(share), sum(head) from read_parquet(?)", [sys.argv[1]]).fetchone())
            """, path])
        XCTAssertEqual(r.status, 0, r.stderr)
        let nn = Int64(n)
        let shareSum = Double(nn * (nn - 1) / 2 - 10 * (nn / 10) * (nn / 10 - 1) / 2) * 0.5
        let headSum = (0..<n).reduce(0) { $0 + $1 % 12 }
        XCTAssertEqual(String(decoding: r.stdout, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines),
                       "(\(n), \(nn * (nn - 1) / 2), \(shareSum), \(n - n / 10), \(headSum))")
    }

    // MARK: Helpers

    /// Runs the python3 on PATH with `args`; skips the test when there is none.
    private func python(_ args: [String]) throws -> (status: Int32, stdout: Data, stderr: String) {
        let dirs = (ProcessInfo.processInfo.environment["PATH"] ?? "/usr/bin").split(separator: ":")
        guard let python = dirs.map({ "\($0)/python3" }).first(where: FileManager.default.isExecutableFile) else {
            throw XCTSkip("python3 is not installed")
        }
        let p = Process()
        p.executableURL = URL(fileURLWithPath: python)
        p.arguments = args
        let out = Pipe(), err = Pipe()
        p.standardOutput = out
        p.standardError = err
        try p.run()
        // Read both pipes before waiting, so a large output cannot deadlock the child.
        var o = Data(), e = Data()
        let group = DispatchGroup()
        group.enter(); DispatchQueue.global().async { o = out.fileHandleForReading.readDataToEndOfFile(); group.leave() }
        group.enter(); DispatchQueue.global().async { e = err.fileHandleForReading.readDataToEndOfFile(); group.leave() }
        group.wait()
        p.waitUntilExit()
        return (p.terminationStatus, o, String(decoding: e, as: UTF8.self))
    }

    private func temporaryDirectory() -> URL {
        let d = FileManager.default.temporaryDirectory.appendingPathComponent("qkdb-parquet-\(UUID().uuidString)")
        try! FileManager.default.createDirectory(at: d, withIntermediateDirectories: true)
        addTeardownBlock { try? FileManager.default.removeItem(at: d) }
        return d
    }
}
