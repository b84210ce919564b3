import XCTest
import Foundation

/// Issue 17 through the real binary, on a run `qkdb run` makes of the tiny GPT-2 on an English
/// corpus, stored where `tools/run.sh` puts MiniLM's (`out/minilm-l2.qkdb`) so the README's quick
/// start runs exactly as written:
/// - every command of the quick start succeeds and prints something (no error, no empty table);
/// - automatic labels appear in `pairs`, `sinks`, `explain`, `feature`, every CSV and the report,
///   and `qkdb label` replaces one everywhere;
/// - the CSVs load in DuckDB and pandas with plain, unreserved column names;
/// - tables print at most four significant figures.
final class ReadingARunTests: XCTestCase {
    nonisolated(unsafe) static var shared: (dir: URL, store: String)?

    /// The run, made once for the class: `DIR/out/minilm-l2.qkdb`.
    static func store() throws -> (dir: URL, store: String) {
        if let s = shared { return s }
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("qkdb-reading-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir.appendingPathComponent("out"), withIntermediateDirectories: true)
        let corpus = try PipelineCLITests.corpus(in: dir)
        let store = dir.appendingPathComponent("out/minilm-l2.qkdb").path
        let r = try CLI.run(PipelineCLITests.runArguments(corpus: corpus, store: store))
        XCTAssertEqual(r.status, 0, r.stderr)
        shared = (dir, store)
        return (dir, store)
    }

    override class func tearDown() {
        if let s = shared { try? FileManager.default.removeItem(at: s.dir) }
        super.tearDown()
    }

    /// The README's quick-start block: the lines between the marker comment's fence and the next.
    static func quickStart() throws -> [String] {
        let readme = try String(contentsOf: CLI.root.appendingPathComponent("README.md"), encoding: .utf8)
        let marker = try XCTUnwrap(readme.range(of: "<!-- quick start: tested as written"), "README lost its quick-start marker")
        let rest = readme[marker.upperBound...]
        let open = try XCTUnwrap(rest.range(of: "```sh\n"))
        let close = try XCTUnwrap(rest[open.upperBound...].range(of: "```"))
        return rest[open.upperBound..<close.lowerBound].split(separator: "\n").map(String.init)
            .filter { !$0.trimmingCharacters(in: .whitespaces).isEmpty && !$0.hasPrefix("#") }
    }

    func testReadmeQuickStartRunsAsWritten() throws {
        let (dir, _) = try Self.store()
        let lines = try Self.quickStart()
        XCTAssertGreaterThanOrEqual(lines.count, 10)
        // One bash script: each command's output, errors and status land in files of their own;
        // an assignment (Q=$(…)) runs as written and must not come out empty.
        let logs = dir.appendingPathComponent("quickstart")
        try FileManager.default.createDirectory(at: logs, withIntermediateDirectories: true)
        var script = "cd \(dir.path)\nexport PATH=\(CLI.binary.deletingLastPathComponent().path):$PATH\n"
        for (n, line) in lines.enumerated() {
            if line.range(of: #"^[A-Za-z_]+=\$\("#, options: .regularExpression) != nil {
                let name = String(line.prefix { $0 != "=" })
                script += "\(line)\n[ -n \"$\(name)\" ] || echo '\(name) came out empty' > \(logs.path)/err.\(n)\necho 0 > \(logs.path)/status.\(n)\n"
            } else {
                script += "{ \(line)\n} > \(logs.path)/out.\(n) 2>> \(logs.path)/err.\(n); echo $? > \(logs.path)/status.\(n)\n"
            }
        }
        let (status, _, stderr) = try CLI.execute(URL(fileURLWithPath: "/bin/bash"), ["-c", script])
        XCTAssertEqual(status, 0, String(decoding: stderr, as: UTF8.self))
        for (n, line) in lines.enumerated() {
            func read(_ name: String) -> String { (try? String(contentsOfFile: "\(logs.path)/\(name).\(n)", encoding: .utf8)) ?? "" }
            XCTAssertEqual(read("status").trimmingCharacters(in: .whitespacesAndNewlines), "0", "README line failed: \(line)\n\(read("err"))")
            XCTAssertEqual(read("err"), "", "README line wrote to stderr: \(line)")
            guard !line.contains("=$(") else { continue }
            let out = read("out").split(separator: "\n")
            // A table prints its header and at least one row; other output at least one line.
            let isTable = out.first.map { $0.contains("  ") && !$0.hasPrefix("wrote") } ?? false
            XCTAssertGreaterThanOrEqual(out.count, isTable ? 2 : 1, "README line printed \(isTable ? "an empty table" : "nothing"): \(line)\n\(read("out"))")
        }
    }

    /// A copy of the class's store, for tests that write to it.
    func copiedStore() throws -> String {
        let (_, store) = try Self.store()
        let copy = CLI.temporaryDirectory(self).appendingPathComponent("copy.qkdb").path
        try FileManager.default.copyItem(atPath: store, toPath: copy)
        return copy
    }

    func json(_ args: [String]) throws -> [[String: Any]] {
        let r = try CLI.run(args + ["--format", "json"])
        XCTAssertEqual(r.status, 0, r.stderr)
        return try XCTUnwrap(try JSONSerialization.jsonObject(with: Data(r.stdout.utf8)) as? [[String: Any]], r.stdout)
    }

    func testLabelsAppearEverywhereAndALabelSetByHandReplacesThem() throws {
        let store = try copiedStore()
        let dir = URL(fileURLWithPath: store).deletingLastPathComponent()
        let base = ["--store", store, "--run", "1"]
        // Automatic labels: what the feature fires on, with shares.
        let top = try json(["pairs"] + base + ["--head", "0", "--top", "1"])
        let first = try XCTUnwrap(top.first, "head 0 has no pairs")
        let q = try XCTUnwrap(first["query_feature"] as? Int), k = try XCTUnwrap(first["key_feature"] as? Int)
        let auto = try XCTUnwrap(first["query_label"] as? String, "no automatic label on query feature \(q)")
        XCTAssertTrue(auto.contains("%") && (auto.contains("“") || auto.hasPrefix("broad: ")), auto)
        let sink = try json(["sinks"] + base + ["--top", "1"]).first
        XCTAssertEqual(sink?["key_label"] as? String, "first position (set, not encoded)")

        // The researcher's label replaces the automatic one in every view.
        let mine = "my feature, \"quoted\""
        let set = try CLI.run(["label"] + base + ["--side", "query", "--index", String(q), "--text", mine])
        XCTAssertEqual(set.status, 0, set.stderr)
        XCTAssertEqual(try json(["pairs"] + base + ["--head", "0", "--top", "1"]).first?["query_label"] as? String, mine)
        XCTAssertTrue(try json(["pairs"] + base + ["--query-feature", String(q)]).allSatisfy { $0["query_label"] as? String == mine })
        XCTAssertTrue(try json(["pairs"] + base + ["--key-feature", String(k), "--top", "0"]).contains { $0["query_label"] as? String == mine })
        let feature = try CLI.run(["feature"] + base + ["--side", "query", "--index", String(q), "--no-histogram", "--format", "json"])
        XCTAssertEqual(((try JSONSerialization.jsonObject(with: Data(feature.stdout.utf8)) as? [String: Any])?["feature"] as? [String: Any])?["label"] as? String, mine)
        let heads = try json(["heads"] + base + ["--top", "1"])
        XCTAssertEqual(heads.first { $0["head"] as? Int == 0 }?["query_label"] as? String, mine)
        let sinks = try json(["sinks"] + base + ["--top", "0"])
        if sinks.contains(where: { $0["query_feature"] as? Int == q }) {
            XCTAssertTrue(sinks.filter { $0["query_feature"] as? Int == q }.allSatisfy { $0["query_label"] as? String == mine })
        }
        let searched = try json(["features"] + base + ["--text", "the", "--top", "0", "--side", "query"])
        XCTAssertTrue(searched.filter { $0["feature"] as? Int == q }.allSatisfy { $0["label"] as? String == mine })
        // explain: every pair of the prompt (CSV) carries the labels of both features.
        let explain = try CLI.run(["explain"] + base + ["--text", "the cat sat on a mat and the dog ran", "--head", "0", "--dest", "8", "--format", "csv"])
        XCTAssertEqual(explain.status, 0, explain.stderr)
        XCTAssertTrue(explain.stdout.hasPrefix("query_feature,key_feature,a_query,a_key,contribution,share_of_abs_pairs,stored_value,query_label,key_label\n"), explain.stdout)
        let explained = explain.stdout.split(separator: "\n").dropFirst()
        XCTAssertFalse(explained.isEmpty)
        for line in explained where line.hasPrefix("\(q),") { XCTAssertTrue(line.contains(CSVEscaped.field(mine)), String(line)) }
        // Every CSV.
        for what in ["pairs", "features", "examples"] {
            let out = dir.appendingPathComponent("\(what).csv").path
            let r = try CLI.run(["export"] + base + ["--what", what, "--out", out])
            XCTAssertEqual(r.status, 0, r.stderr)
            let text = try String(contentsOfFile: out, encoding: .utf8)
            XCTAssertTrue(text.contains(CSVEscaped.field(mine)), "\(what).csv lacks the label")
            XCTAssertTrue(text.contains("“") || text.contains("broad: "), "\(what).csv lacks automatic labels")
        }
        // The report: the feature's own page, the heads page and the pairs tables.
        let site = dir.appendingPathComponent("report")
        let report = try CLI.run(["report"] + base + ["--out", site.path, "--prompts", "1"])
        XCTAssertEqual(report.status, 0, report.stderr)
        let escaped = "my feature, &quot;quoted&quot;"
        let page = try String(contentsOf: site.appendingPathComponent("features/query-\(q).html"), encoding: .utf8)
        XCTAssertTrue(page.contains(escaped), "the feature page lacks the label")
        let headsPage = try String(contentsOf: site.appendingPathComponent("heads.html"), encoding: .utf8)
        XCTAssertTrue(headsPage.contains(escaped), "the heads page lacks the label")
        XCTAssertTrue(headsPage.contains("id=\"heads\""), "the heads page lacks the heads table")
        XCTAssertFalse(try String(contentsOf: site.appendingPathComponent("index.html"), encoding: .utf8).contains("klFull"),
                       "the summary shows raw metric keys")
    }

    func testCSVsLoadInDuckDBAndPandasWithPlainColumnNames() throws {
        let (_, store) = try Self.store()
        let dir = CLI.temporaryDirectory(self)
        var paths: [String] = []
        for what in ["pairs", "features", "examples"] {
            let out = dir.appendingPathComponent("\(what).csv").path
            XCTAssertEqual(try CLI.run(["export", "--store", store, "--run", "1", "--what", what, "--out", out]).status, 0)
            paths.append(out)
        }
        // Each file: its header has no quoted name; DuckDB and pandas read the same columns and
        // rows; no column is a DuckDB reserved word or pandas' own `index`; `run` is the first.
        let script = """
        import csv, json, sys, duckdb, pandas as pd
        reserved = {r[0] for r in duckdb.sql("SELECT keyword_name FROM duckdb_keywords() WHERE keyword_category = 'reserved'").fetchall()}
        out = {}
        for path in sys.argv[1:]:
            header = open(path, encoding='utf-8').readline().rstrip('\\n')
            rel = duckdb.read_csv(path, header=True)
            frame = pd.read_csv(path, keep_default_na=False)
            out[path] = {"quoted": '"' in header, "duckdb": rel.columns, "pandas": list(frame.columns),
                         "reserved": sorted(set(rel.columns) & reserved), "rows_duckdb": len(rel.fetchall()), "rows_pandas": len(frame)}
        print(json.dumps(out))
        """
        let r = try CLI.python(["-c", script] + paths)
        guard r.status == 0 else { return XCTFail("python with duckdb and pandas (tools/test.sh installs them): \(r.stderr)") }
        let result = try XCTUnwrap(try JSONSerialization.jsonObject(with: r.stdout) as? [String: [String: Any]])
        for path in paths {
            let f = try XCTUnwrap(result[path])
            let name = URL(fileURLWithPath: path).lastPathComponent
            XCTAssertEqual(f["quoted"] as? Bool, false, name)
            let columns = try XCTUnwrap(f["duckdb"] as? [String])
            XCTAssertEqual(columns, f["pandas"] as? [String], name)
            XCTAssertEqual(columns.first, "run", name)
            XCTAssertFalse(columns.contains("index"), name)
            XCTAssertEqual(f["reserved"] as? [String], [], name)
            XCTAssertEqual(f["rows_duckdb"] as? Int, f["rows_pandas"] as? Int, name)
            XCTAssertGreaterThan(f["rows_pandas"] as? Int ?? 0, 0, name)
        }
        XCTAssertEqual(try XCTUnwrap(result[paths[2]]?["duckdb"] as? [String]),
                       ["run", "side", "feature", "rank", "sequence_id", "position", "token", "activation", "label"])
    }

    /// `export --format parquet`: DuckDB reads the Hive-partitioned directory; its row counts and a
    /// top-10 by (layer, head, query feature) equal `qkdb pairs`; pyarrow reports the documented
    /// column types; the directory is replaced only as qkdb's own.
    func testParquetExportReadsBackInDuckDBAndPyarrow() throws {
        let (_, store) = try Self.store()
        let dir = CLI.temporaryDirectory(self).appendingPathComponent("parquet")
        let r = try CLI.run(["export", "--store", store, "--format", "parquet", "--out", dir.path])
        XCTAssertEqual(r.status, 0, r.stderr)
        let info = try XCTUnwrap(try json(["runs", "--store", store]).first)
        let nnz = try XCTUnwrap(info["pairs"] as? Int)
        let top = try json(["pairs", "--store", store, "--run", "1", "--head", "0", "--top", "1"])
        let q = try XCTUnwrap(top.first?["query_feature"] as? Int)
        let want = try json(["pairs", "--store", store, "--run", "1", "--head", "0", "--query-feature", String(q), "--top", "10"])
            .map { "\($0["key_feature"] as? Int ?? -1) \(($0["importance"] as? NSNumber)?.floatValue ?? .nan)" }
        let features = try CLI.run(["export", "--store", store, "--run", "1", "--what", "features", "--out", "-"]).stdout.split(separator: "\n").count - 1
        let script = """
        import json, sys, duckdb, pyarrow.parquet as pq
        d, q = sys.argv[1], int(sys.argv[2])
        pairs = f"read_parquet('{d}/pairs/**/*.parquet', hive_partitioning = true)"
        out = {"pairs": duckdb.sql(f"SELECT count(*) FROM {pairs}").fetchall()[0][0],
               "features": duckdb.sql(f"SELECT count(*) FROM read_parquet('{d}/features/**/*.parquet', hive_partitioning = true)").fetchall()[0][0],
               "layers": [r[0] for r in duckdb.sql(f"SELECT DISTINCT layer FROM {pairs}").fetchall()],
               "top": [f"{k} {i}" for k, i in duckdb.sql(f"SELECT key_feature, importance FROM {pairs} WHERE layer = 1 AND head = 0 AND query_feature = {q} ORDER BY importance DESC, key_feature LIMIT 10").fetchall()],
               "types": {t: {f.name: str(f.type) for f in pq.read_schema(next(__import__('glob').iglob(f'{d}/{t}/*/*/*.parquet')))} for t in ["pairs", "features", "examples"]}}
        print(json.dumps(out))
        """
        let py = try CLI.python(["-c", script, dir.path, String(q)])
        guard py.status == 0 else { return XCTFail("python with duckdb and pyarrow (tools/test.sh installs them): \(py.stderr)") }
        let got = try XCTUnwrap(try JSONSerialization.jsonObject(with: py.stdout) as? [String: Any])
        XCTAssertEqual(got["pairs"] as? Int, nnz)
        XCTAssertEqual(got["features"] as? Int, features)
        XCTAssertEqual(got["layers"] as? [Int], [1])
        // float32 importance printed by Python as a double: compare through Float.
        let top10 = (got["top"] as? [String] ?? []).map { s -> String in
            let f = s.split(separator: " "); return "\(f[0]) \(Float(Double(f[1]) ?? .nan))"
        }
        XCTAssertEqual(top10, want)
        let types = try XCTUnwrap(got["types"] as? [String: [String: String]])
        XCTAssertEqual(types["pairs"], ["run": "int64", "head": "int32", "query_feature": "int32", "key_feature": "int32", "value": "float",
                                        "mask": "float", "importance": "float", "mean_contribution": "float", "cooccurrence": "float",
                                        "query_label": "string", "key_label": "string"])
        XCTAssertEqual(types["features"], ["run": "int64", "side": "string", "feature": "int32", "alive": "int32", "density": "double",
                                           "mean_activation": "double", "max_activation": "double", "bos_fraction": "double", "label": "string"])
        XCTAssertEqual(types["examples"], ["run": "int64", "side": "string", "feature": "int32", "rank": "int32", "sequence_id": "int32",
                                           "position": "int32", "token": "string", "activation": "float", "label": "string"])
        // Its own earlier export is replaced; someone else's folder is not.
        XCTAssertEqual(try CLI.run(["export", "--store", store, "--format", "parquet", "--out", dir.path]).status, 0)
        let foreign = CLI.temporaryDirectory(self)
        try "keep me".write(to: foreign.appendingPathComponent("notes.txt"), atomically: true, encoding: .utf8)
        try CLI.assertFails(["export", "--store", store, "--format", "parquet", "--out", foreign.path], mentioning: foreign.lastPathComponent)
        XCTAssertEqual(try String(contentsOf: foreign.appendingPathComponent("notes.txt"), encoding: .utf8), "keep me")
    }

    func testTablesShowAtMostFourSignificantFigures() throws {
        let (_, store) = try Self.store()
        let base = ["--store", store, "--run", "1"]
        let commands: [[String]] = [["heads"] + base, ["pairs"] + base + ["--head", "0"], ["sinks"] + base,
                                    ["feature"] + base + ["--side", "key", "--index", "0", "--no-histogram"],
                                    ["features"] + base + ["--token", "the"], ["runs", "--store", store, "--evaluations"]]
        for args in commands {
            let r = try CLI.run(args)
            XCTAssertEqual(r.status, 0, r.stderr)
            for cell in r.stdout.split(whereSeparator: { $0 == " " || $0 == "\n" }) where Self.isDecimal(cell) {
                XCTAssertLessThanOrEqual(Self.significantDigits(cell), 4, "qkdb \(args[0]) printed \(cell)")
            }
        }
    }

    /// A number written with a point or an exponent (integers may have any number of digits).
    static func isDecimal(_ s: Substring) -> Bool {
        Double(s) != nil && (s.contains(".") || s.lowercased().contains("e")) && s.allSatisfy { "0123456789.-+eE".contains($0) }
    }

    static func significantDigits(_ s: Substring) -> Int {
        let mantissa = s.lowercased().split(separator: "e").first ?? ""
        let digits = mantissa.filter(\.isNumber).drop { $0 == "0" }
        return digits.count
    }
}

/// A field as the CSV writer quotes it (RFC 4180).
enum CSVEscaped {
    static func field(_ s: String) -> String {
        s.contains(where: { $0 == "," || $0 == "\"" || $0 == "\n" }) ? "\"" + s.replacingOccurrences(of: "\"", with: "\"\"") + "\"" : s
    }
}
