import XCTest
import Foundation

/// `explain`, `feature`, `report` and `export --what dashboard` on a run of the planted GPT-2
/// (layer 1 attends from planted query tokens to planted key tokens), trained once for the class.
final class ExploreCommandTests: XCTestCase {
    nonisolated(unsafe) static var shared: (dir: URL, store: String)?

    /// Printable planted tokens (byte-level ids = byte values, see planted.json): pair 0 lives on
    /// head 0 with query bytes "|g" and key bytes "nlCj"; the rest of the text is neutral.
    static let neutral = Array("zxwqkmoprstuhidfc ")
    static let planted = Array("|gnlCj$0+avV(#BUXe[;Y<J4E&")

    static func store() throws -> String {
        if let s = shared { return s.store }
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("qkdb-explore-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        var rng = Seeded(state: 42)  // a fixed corpus: the run (seed 0) is then the same every time
        var lines: [String] = []
        for _ in 0..<400 {
            let text = String((0..<40).map { _ in Bool.random(using: &rng) ? planted.randomElement(using: &rng)! : neutral.randomElement(using: &rng)! })
            lines.append("{\"text\": \"\(text.replacingOccurrences(of: "\\", with: "\\\\").replacingOccurrences(of: "\"", with: "\\\""))\"}")
        }
        let corpus = dir.appendingPathComponent("corpus.jsonl")
        try lines.joined(separator: "\n").write(to: corpus, atomically: true, encoding: .utf8)
        let store = dir.appendingPathComponent("planted.qkdb").path
        let r = try CLI.run(["run", "--model", CLI.root.appendingPathComponent("Tests/Fixtures/train/planted_gpt2").path,
                             "--corpus", corpus.path, "--layer", "1", "--context", "16", "--d-hidden", "32",
                             "--train-tokens", "40000", "--mask-sequences", "256", "--eval-sequences", "8", "--store", store])
        XCTAssertEqual(r.status, 0, r.stderr)
        shared = (dir, store)
        return store
    }

    /// SplitMix64, so the corpus is the same on every run of the test.
    struct Seeded: RandomNumberGenerator {
        var state: UInt64
        mutating func next() -> UInt64 {
            state &+= 0x9E37_79B9_7F4A_7C15
            var z = state
            z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
            z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
            return z ^ (z >> 31)
        }
    }

    override class func tearDown() {
        if let s = shared { try? FileManager.default.removeItem(at: s.dir) }
        super.tearDown()
    }

    func testExplainAttributesThePlantedPair() throws {
        let store = try Self.store()
        let r = try CLI.run(["explain", "--store", store, "--run", "1", "--text", "zzn zz zzg", "--head", "0",
                             "--dest", "g", "--src", "n", "--format", "json"])
        XCTAssertEqual(r.status, 0, r.stderr)
        let j = try XCTUnwrap(try JSONSerialization.jsonObject(with: Data(r.stdout.utf8)) as? [String: Any], r.stdout)
        let trueScore = try XCTUnwrap(j["true_score"] as? Double)
        let parts = ["pair_sum", "key_bias", "row_constant", "error"].compactMap { j[$0] as? Double }
        XCTAssertEqual(parts.count, 4)
        XCTAssertEqual(parts.reduce(0, +), trueScore, accuracy: 1e-3 * max(1, abs(trueScore)))
        // The planted pair dominates what the transcoders explain: the pair terms carry most of the
        // reconstructed score (not the bias terms), concentrated in a handful of pairs of the
        // features on "g" and "n" (the dictionaries may split each planted direction over 2–3 features).
        XCTAssertGreaterThan(trueScore, 1)
        let reconstructed = try XCTUnwrap(j["reconstructed_score"] as? Double)
        let pairSum = try XCTUnwrap(j["pair_sum"] as? Double)
        XCTAssertGreaterThan(reconstructed, 0.25 * trueScore, r.stdout)
        XCTAssertGreaterThan(pairSum, 0.75 * reconstructed, r.stdout)
        let pos = try XCTUnwrap(j["positive_pairs"] as? [[String: Any]])
        let top = pos.prefix(6).compactMap { $0["contribution"] as? Double }.reduce(0, +)
        XCTAssertGreaterThan(top, 0.8 * pairSum, r.stdout)
        // Per-feature sums add up to the same pair total on each side.
        for side in ["by_query_feature", "by_key_feature"] {
            let m = try XCTUnwrap(j[side] as? [[String: Any]])
            XCTAssertFalse(m.isEmpty)
            XCTAssertGreaterThan(try XCTUnwrap(m.first?["contribution"] as? Double), 0.3 * pairSum, side)
        }
        // The attention row: the planted key gets most of the true attention from "g".
        let row = try XCTUnwrap(j["true_pattern"] as? [Double])
        let tokens = try XCTUnwrap(j["tokens"] as? [String])
        let n = try XCTUnwrap(tokens.firstIndex(of: "n"))
        XCTAssertEqual(row.indices.max { row[$0] < row[$1] }, n)
        let recon = try XCTUnwrap(j["reconstructed_pattern"] as? [Double])
        XCTAssertEqual(recon.indices.max { recon[$0] < recon[$1] }, n)

        // Table form, positions by index, all sources summarised.
        let t = try CLI.run(["explain", "--store", store, "--run", "1", "--text", "zzn zz zzg", "--head", "0", "--dest", "10"])
        XCTAssertEqual(t.status, 0, t.stderr)
        for s in ["attention-weighted", "key-bias term B·a_K", "error (true − reconstructed)", "attention row from 10:g", "positive pairs", "pair terms summed per feature"] {
            XCTAssertTrue(t.stdout.contains(s), "missing \(s) in\n\(t.stdout)")
        }
    }

    func testExplainRejectsBadPositionsInOneLine() throws {
        let store = try Self.store()
        try CLI.assertFails(["explain", "--store", store, "--run", "1", "--text", "zzn zzg", "--head", "0", "--dest", "q"], mentioning: "--dest \"q\" is not a token")
        try CLI.assertFails(["explain", "--store", store, "--run", "1", "--text", "zzn zzg", "--head", "0", "--dest", "2", "--src", "5"], mentioning: "--src 5 is after --dest 2")
        try CLI.assertFails(["explain", "--store", store, "--run", "1", "--text", "zzn", "--head", "7", "--dest", "1"], mentioning: "head 7")
        try CLI.assertFails(["explain", "--store", store, "--run", "9", "--text", "zzn", "--head", "0", "--dest", "1"], mentioning: "9")
    }

    func testFeatureShowsExamplesHistogramAndPartners() throws {
        let store = try Self.store()
        // The query feature of the planted pair (the top pair of an explanation).
        let e = try CLI.run(["explain", "--store", store, "--run", "1", "--text", "zzn zz zzg", "--head", "0", "--dest", "g", "--src", "n", "--format", "json"])
        XCTAssertEqual(e.status, 0, e.stderr)
        let j = try XCTUnwrap(try JSONSerialization.jsonObject(with: Data(e.stdout.utf8)) as? [String: Any])
        let q = String(try XCTUnwrap((j["positive_pairs"] as? [[String: Any]])?.first?["query_feature"] as? Int))
        let r = try CLI.run(["feature", "--store", store, "--run", "1", "--side", "query", "--index", q])
        XCTAssertEqual(r.status, 0, r.stderr)
        XCTAssertTrue(r.stdout.contains("max-activating examples"), r.stdout)
        XCTAssertTrue(r.stdout.contains("«"), "firing token not marked:\n\(r.stdout)")
        XCTAssertTrue(r.stdout.contains("activation histogram over"), r.stdout)
        XCTAssertTrue(r.stdout.contains("█"), r.stdout)
        XCTAssertTrue(r.stdout.contains("strongest partners on each head"), r.stdout)
    }

    func testDashboardExport() throws {
        let store = try Self.store()
        let out = CLI.temporaryDirectory(self).appendingPathComponent("dash")
        let r = try CLI.run(["export", "--store", store, "--run", "1", "--what", "dashboard", "--out", out.path])
        XCTAssertEqual(r.status, 0, r.stderr)
        let index = try XCTUnwrap(try JSONSerialization.jsonObject(with: Data(contentsOf: out.appendingPathComponent("index.json"))) as? [String: Any])
        let entries = try XCTUnwrap(index["features"] as? [[String: Any]])
        XCTAssertEqual(entries.count, 64)
        var withExamples = 0
        for e in entries {
            let f = try XCTUnwrap(try JSONSerialization.jsonObject(with: Data(contentsOf: out.appendingPathComponent(e["path"] as! String))) as? [String: Any])
            XCTAssertNotNil(f["frac_nonzero"] as? Double)
            let heights = try XCTUnwrap(f["freq_hist_data_bar_heights"] as? [Int])
            XCTAssertEqual(heights.count, (f["freq_hist_data_bar_values"] as? [Double])?.count)
            let acts = try XCTUnwrap(f["activations"] as? [[String: Any]])
            for a in acts {
                let tokens = try XCTUnwrap(a["tokens"] as? [String]), values = try XCTUnwrap(a["values"] as? [Double])
                XCTAssertEqual(tokens.count, values.count)
                let k = try XCTUnwrap(a["qualifying_token_index"] as? Int)
                XCTAssertEqual(values[k], try XCTUnwrap(a["max_value"] as? Double), accuracy: 1e-3)
            }
            if !acts.isEmpty { withExamples += 1 }
        }
        XCTAssertGreaterThan(withExamples, 0)
        // A second export replaces the first whole (no mixing of files); a folder of someone
        // else's files, a store or another file is refused and left as it was.
        let again = try CLI.run(["export", "--store", store, "--run", "1", "--what", "dashboard", "--out", out.path])
        XCTAssertEqual(again.status, 0, again.stderr)
        for victim in try OutputSafetyTests.victims(in: out.deletingLastPathComponent(), store: store) {
            try OutputSafetyTests.assertRefusesToReplace(["export", "--store", store, "--run", "1", "--what", "dashboard", "--out"], victim)
        }
        try CLI.assertFails(["export", "--store", store, "--run", "1", "--what", "dashboard", "--out", "-"], mentioning: "only CSV")
    }

    /// A store copied elsewhere, its model moved: `--model` (checked by fingerprint) or the
    /// fallbacks find it; `feature` without it still prints everything but the histogram; a
    /// folder with other weights is refused in one line.
    func testAMovedStoreFindsItsModelByFingerprint() throws {
        let fm = FileManager.default
        let dir = CLI.temporaryDirectory(self)
        let share = dir.appendingPathComponent("share")
        try fm.createDirectory(at: share, withIntermediateDirectories: true)
        let store = share.appendingPathComponent("planted.qkdb").path
        try fm.copyItem(atPath: try Self.store(), toPath: store)
        // As if trained elsewhere with a relative path that does not resolve here (the edit drops the
        // manifest, as a store from before manifests, which would otherwise refuse the edited row).
        try CLI.sql("UPDATE runs SET config = json_set(config, '$.model', 'gone/planted_gpt2'); DELETE FROM meta WHERE key LIKE 'manifest.%';", on: store)
        let source = CLI.root.appendingPathComponent("Tests/Fixtures/train/planted_gpt2")
        let moved = dir.appendingPathComponent("elsewhere/planted_gpt2")
        try fm.createDirectory(at: moved.deletingLastPathComponent(), withIntermediateDirectories: true)
        try fm.copyItem(at: source, to: moved)

        let feature = ["feature", "--store", store, "--run", "1", "--side", "key", "--index", "0"]
        let without = try CLI.run(feature, cwd: share)
        XCTAssertEqual(without.status, 0, without.stderr)
        XCTAssertTrue(without.stdout.contains("max-activating examples") && without.stdout.contains("strongest partners"), without.stdout)
        XCTAssertTrue(without.stdout.contains("activation histogram: needs the run's model") && without.stdout.contains("--model"), without.stdout)
        let with = try CLI.run(feature + ["--model", moved.path], cwd: share)
        XCTAssertEqual(with.status, 0, with.stderr)
        XCTAssertTrue(with.stdout.contains("activation histogram over"), with.stdout)
        for args in [["explain", "--store", store, "--run", "1", "--text", "zzn zz zzg", "--head", "0", "--dest", "g"],
                     ["export", "--store", store, "--run", "1", "--what", "dashboard", "--out", dir.appendingPathComponent("dash").path]] {
            try CLI.assertFails(args, mentioning: "pass --model")
            let r = try CLI.run(args + ["--model", moved.path], cwd: share)
            XCTAssertEqual(r.status, 0, "\(args[0]): \(r.stderr)")
        }
        // The fallback models/NAME under the working directory.
        try fm.createDirectory(at: share.appendingPathComponent("models"), withIntermediateDirectories: true)
        try fm.copyItem(at: moved, to: share.appendingPathComponent("models/planted_gpt2"))
        let found = try CLI.run(feature, cwd: share)
        XCTAssertTrue(found.stdout.contains("activation histogram over"), found.stdout + found.stderr)
        // Other weights in a folder of the same name: refused.
        let other = dir.appendingPathComponent("other/planted_gpt2")
        try fm.createDirectory(at: other.deletingLastPathComponent(), withIntermediateDirectories: true)
        try fm.copyItem(at: moved, to: other)
        let weights = try FileHandle(forUpdating: other.appendingPathComponent("model.safetensors"))
        try weights.seek(toOffset: try weights.seekToEnd() - 8)
        try weights.write(contentsOf: Data([1, 2, 3, 4, 5, 6, 7, 8]))
        try weights.close()
        try CLI.assertFails(feature + ["--model", other.path], mentioning: "not the model run 1 was trained on")
    }

    /// A model folder without its tokenizer files, and an empty or blank prompt: one line each.
    func testExplainNamesMissingTokenizerFilesAndRefusesBlankText() throws {
        let store = try Self.store()
        let model = CLI.temporaryDirectory(self).appendingPathComponent("planted_gpt2")
        try FileManager.default.copyItem(at: CLI.root.appendingPathComponent("Tests/Fixtures/train/planted_gpt2"), to: model)
        for name in try FileManager.default.contentsOfDirectory(atPath: model.path)
        where ["tokenizer.json", "vocab.json", "merges.txt", "vocab.txt", "tokenizer_config.json"].contains(name) {
            try FileManager.default.removeItem(at: model.appendingPathComponent(name))
        }
        let explain = ["explain", "--store", store, "--run", "1", "--head", "0", "--dest", "1"]
        try CLI.assertFails(explain + ["--text", "hello world", "--model", model.path], mentioning: "no tokenizer files")
        for blank in ["", "   ", "\n\t"] {
            try CLI.assertFails(explain + ["--text", blank], mentioning: "--text is empty")
        }
    }

    /// Edits to rows no chunk checksum covers — features, examples, vocabulary, a tensor's shape —
    /// fail `verify` (the run's manifest), where they used to pass.
    func testEditedCatalogRowsFailVerify() throws {
        let trained = try Self.store()
        for sql in ["UPDATE features SET density = 0.5 WHERE idx = 0 AND side = 'key';", "DELETE FROM examples WHERE rank = 0 AND feature = 0;",
                    "UPDATE vocabulary SET token = 'x' WHERE id = 5;", "UPDATE tensors SET shape = '[32, 1, 64]' WHERE name = 'query.W_dec';"] {
            let store = CLI.temporaryDirectory(self).appendingPathComponent("s.qkdb").path
            try FileManager.default.copyItem(atPath: trained, toPath: store)
            XCTAssertEqual(try CLI.run(["verify", "--store", store]).status, 0)
            try CLI.sql(sql, on: store)
            // The changed shape is also caught by the tensor's decode; either way, one line naming run 1.
            try CLI.assertFails(["verify", "--store", store], mentioning: sql.contains("tensors") ? "of run 1" : "do not match its manifest")
        }
    }

    /// `sinks --format csv` and the report's sinks table: the same features, order and totals
    /// (the key-bias term included, and shown on its own).
    func testReportSinksMatchTheSinksCommand() throws {
        let store = try Self.store()
        let out = CLI.temporaryDirectory(self).appendingPathComponent("report")
        let csv = try CLI.run(["sinks", "--store", store, "--run", "1", "--format", "csv", "--threshold", "0.9"])
        XCTAssertEqual(csv.status, 0, csv.stderr)
        // The report shows four significant figures, the CSV every digit: compare at the report's precision.
        func short(_ x: Substring) -> String { Double(x).map { String(format: "%.4g", $0) } ?? String(x) }
        var fromCLI: [String] = []
        for line in csv.stdout.split(separator: "\n").dropFirst() {
            let f = line.split(separator: ",", omittingEmptySubsequences: false)
            let row = "k\(f[0]) \(short(f[3])) \(short(f[4]))"
            if fromCLI.last != row { fromCLI.append(row) }
        }
        let r = try CLI.run(["report", "--store", store, "--run", "1", "--out", out.path, "--prompts", "1"])
        XCTAssertEqual(r.status, 0, r.stderr)
        let html = try String(contentsOf: out.appendingPathComponent("sinks.html"), encoding: .utf8)
        let pattern = try NSRegularExpression(pattern: #"<tr><td><a href="features/key-\d+\.html">(k\d+)</a>(?: <span class="label">[^<]*</span>)?</td><td class="num">[^<]*</td><td class="num">[^<]*</td><td class="num">([^<]*)</td><td class="num">([^<]*)</td>"#)
        let fromReport = pattern.matches(in: html, range: NSRange(html.startIndex..., in: html)).map { m in
            [String(html[Range(m.range(at: 1), in: html)!])] + (2...3).map { short(html[Range(m.range(at: $0), in: html)!]) }
        }.map { $0.joined(separator: " ") }
        XCTAssertEqual(fromReport, fromCLI)
        XCTAssertFalse(fromCLI.isEmpty, "the planted run has no sink to compare:\n\(csv.stdout)")
    }

    /// `report` and `export-dictionaries` leave a folder of someone's files, a store and another
    /// file untouched; `--force` replaces a folder.
    func testReportAndDictionaryExportRefuseWhatTheyDidNotWrite() throws {
        let store = try Self.store()
        let dir = CLI.temporaryDirectory(self)
        let victims = try OutputSafetyTests.victims(in: dir, store: store)
        for victim in victims {
            try OutputSafetyTests.assertRefusesToReplace(["report", "--store", store, "--run", "1", "--out"], victim)
        }
        // export-dictionaries writes DIR/query and DIR/key: a foreign file in one is refused.
        let sae = dir.appendingPathComponent("sae")
        try FileManager.default.createDirectory(at: sae.appendingPathComponent("key"), withIntermediateDirectories: true)
        try Data("mine".utf8).write(to: sae.appendingPathComponent("key/mine.txt"))
        try OutputSafetyTests.assertRefusesToReplace(["export-dictionaries", "--store", store, "--run", "1", "--out"], sae.path)
        try OutputSafetyTests.assertRefusesToReplace(["export-dictionaries", "--store", store, "--run", "1", "--out"], victims[2])
        for _ in 0..<2 {   // the second time over its own earlier export
            let r = try CLI.run(["export-dictionaries", "--store", store, "--run", "1", "--out", dir.appendingPathComponent("sae2").path])
            XCTAssertEqual(r.status, 0, r.stderr)
        }
        let forced = try CLI.run(["report", "--store", store, "--run", "1", "--out", victims[0], "--force", "--prompts", "1"])
        XCTAssertEqual(forced.status, 0, forced.stderr)
        XCTAssertFalse(FileManager.default.fileExists(atPath: victims[0] + "/notes.txt"))
        XCTAssertTrue(FileManager.default.fileExists(atPath: victims[0] + "/index.html"))
    }

    /// Renders the report in headless Chromium and checks the DOM against the store.
    func testReportRendersInChromium() throws {
        let store = try Self.store()
        let tmp = CLI.temporaryDirectory(self)
        let out = tmp.appendingPathComponent("report")
        let r = try CLI.run(["report", "--store", store, "--run", "1", "--out", out.path])
        XCTAssertEqual(r.status, 0, r.stderr)

        // A directory holding something else is never replaced; an earlier report is.
        let other = tmp.appendingPathComponent("other")
        try FileManager.default.createDirectory(at: other, withIntermediateDirectories: true)
        try Data("keep".utf8).write(to: other.appendingPathComponent("notes.txt"))
        try CLI.assertFails(["report", "--store", store, "--run", "1", "--out", other.path], mentioning: "refusing to replace")
        XCTAssertTrue(FileManager.default.fileExists(atPath: other.appendingPathComponent("notes.txt").path))

        // Every local link of every page resolves to a file.
        let fm = FileManager.default
        var pages = ["index.html", "heatmaps.html", "heads.html", "sinks.html", "features.html"]
        pages += try fm.contentsOfDirectory(atPath: out.appendingPathComponent("features").path).map { "features/" + $0 }
        XCTAssertGreaterThan(pages.count, 10)
        let href = try NSRegularExpression(pattern: "href=\"([^\"#]+)\"")
        var links = 0
        for p in pages {
            let html = try String(contentsOf: out.appendingPathComponent(p), encoding: .utf8)
            let base = out.appendingPathComponent(p).deletingLastPathComponent()
            for m in href.matches(in: html, range: NSRange(html.startIndex..., in: html)) {
                let target = String(html[Range(m.range(at: 1), in: html)!])
                XCTAssertFalse(target.hasPrefix("http"), "\(p) links outside: \(target)")
                XCTAssertTrue(fm.fileExists(atPath: base.appendingPathComponent(target).standardized.path), "\(p): broken link \(target)")
                links += 1
            }
            XCTAssertFalse(html.contains("src=\"http"), "\(p) loads from the network")
        }
        XCTAssertGreaterThan(links, 50)

        guard let chromium = ["/usr/bin/chromium", "/usr/bin/chromium-browser"].first(where: fm.isExecutableFile(atPath:)) else {
            throw XCTSkip("chromium is not installed (tools/test.sh installs it)")
        }
        func dom(_ page: String) throws -> String {
            let res = try Self.exec(chromium, ["--headless", "--no-sandbox", "--disable-gpu", "--dump-dom", out.appendingPathComponent(page).absoluteString])
            guard res.status == 0, res.stdout.contains("</html>") else { throw XCTSkip("chromium cannot run here: \(res.stderr.prefix(200))") }
            return res.stdout
        }
        // Every metric of the store appears with its value on the metrics page (the summary names the main ones).
        let index = try dom("metrics.html")
        let runs = try CLI.run(["runs", "--store", store, "--format", "json"])
        let runList = try XCTUnwrap(try JSONSerialization.jsonObject(with: Data(runs.stdout.utf8)) as? [[String: Any]])
        let metrics = try XCTUnwrap(runList.first?["metrics"])
        let flat = try Self.flatten(String(decoding: try JSONSerialization.data(withJSONObject: metrics), as: UTF8.self))
        XCTAssertGreaterThan(flat.count, 10)
        for (key, value) in flat {
            let cell = try NSRegularExpression(pattern: "data-metric=\"\(NSRegularExpression.escapedPattern(for: key))\"><th>[^<]*</th><td class=\"num\">([^<]*)</td>")
            guard let m = cell.firstMatch(in: index, range: NSRange(index.startIndex..., in: index)) else { XCTFail("metric \(key) missing"); continue }
            let shown = String(index[Range(m.range(at: 1), in: index)!])
            if let v = value as? Double { XCTAssertEqual(Double(shown) ?? .nan, v, accuracy: 1e-9 * max(1, abs(v)), key) } else { XCTAssertEqual(shown, "\(value)", key) }
        }
        // Heatmaps: n_head panels per prompt, three heatmaps each.
        let heat = try dom("heatmaps.html")
        let firstPrompt = heat.components(separatedBy: "<section class=\"prompt\"")[1]
        XCTAssertEqual(firstPrompt.components(separatedBy: "class=\"panel\"").count - 1, 2)
        XCTAssertEqual(firstPrompt.components(separatedBy: "<svg class=\"heatmap\"").count - 1, 6)
        // The search box's script ran and the feature list is there.
        let features = try dom("features.html")
        XCTAssertTrue(features.contains("id=\"search\""))
        XCTAssertTrue(features.contains("const LIVE"))

        // A screenshot for humans.
        let shot = tmp.appendingPathComponent("report.png")
        _ = try Self.exec(chromium, ["--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars", "--window-size=1280,1000",
                                     "--screenshot=\(shot.path)", out.appendingPathComponent("heatmaps.html").absoluteString])
        XCTAssertTrue(fm.fileExists(atPath: shot.path), "no screenshot written")
    }

    static func flatten(_ json: String) throws -> [(String, Any)] {
        var out: [(String, Any)] = []
        func walk(_ v: Any, _ path: String) {
            if let d = v as? [String: Any] { for k in d.keys.sorted() { walk(d[k]!, path.isEmpty ? k : path + "." + k) } }
            else if let a = v as? [Any] { for (n, x) in a.enumerated() { walk(x, "\(path)[\(n)]") } }
            else if let n = v as? NSNumber { out.append((path, n.doubleValue)) }
            else if let s = v as? String { out.append((path, s)) }
        }
        walk(try JSONSerialization.jsonObject(with: Data(json.utf8)), "")
        return out
    }

    static func exec(_ path: String, _ args: [String]) throws -> (status: Int32, stdout: String, stderr: String) {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: path)
        p.arguments = args
        let out = Pipe(), err = Pipe()
        p.standardOutput = out; p.standardError = err
        try p.run()
        // stderr is drained on a background thread so neither pipe can fill and block the child.
        final class Box: @unchecked Sendable { var data = Data() }
        let e = Box()
        let group = DispatchGroup()
        group.enter(); DispatchQueue.global().async { e.data = err.fileHandleForReading.readDataToEndOfFile(); group.leave() }
        let o = out.fileHandleForReading.readDataToEndOfFile()
        group.wait(); p.waitUntilExit()
        return (p.terminationStatus, String(decoding: o, as: UTF8.self), String(decoding: e.data, as: UTF8.self))
    }
}
