import Foundation
import QKTensor
import QKModels
import QKTrain
import QKStore

/// Writes a run as a self-contained static site (plain HTML + CSS + inline SVG, one small inline
/// script for the search box): summary, pattern heatmaps, top pairs per head, sinks and one page
/// per live feature. Everything is written to a temporary directory that replaces `out` only
/// when complete, so a failure leaves no half-written report.
public struct ReportSite {
    public var prompts = 3
    /// Heatmaps show the first `heatmapTokens` positions of each prompt (a 128² SVG per head would
    /// make pages of megabytes).
    public var heatmapTokens = 32
    public var pairsPerHead = 25
    public var partnersPerHead = 5
    public var window = 8
    public init() {}

    public struct Summary: Sendable { public var featurePages: Int; public var seconds: Double }

    /// Opens the run (model, transcoders, the pair map in one pass that also gathers the report's
    /// top lists) and writes the site to `out`.
    public func write(store: Store, run: Int64, to out: String, force: Bool = false, modelPath: String? = nil, progress: ((String) -> Void)? = nil) throws -> Summary {
        let started = Date()
        // Replace only an earlier report (or an empty directory), never someone's other files.
        let target = OutputTarget(path: out, shape: .directory, what: "report", force: force) { dir in
            // Reports written before the marker existed: index.html, style.css and features/.
            OutputTarget.isMarked(dir, what: "report")
                || ["index.html", "style.css", "features"].allSatisfy { FileManager.default.fileExists(atPath: dir + "/" + $0) }
        }
        return try target.writeDirectory { tmp in
            try FileManager.default.createDirectory(at: tmp.appendingPathComponent("features"), withIntermediateDirectories: true)
            progress?("model, transcoders and pair map")
            var tops = PairTops(nHead: try store.run(run).spec.nHead, perHead: pairsPerHead, perFeature: partnersPerHead)
            let explored = try ExploredRun.open(store: store, run: run, modelPath: modelPath, visitPairs: { tops.add($0) })
            let pages = try writeAll(store: store, explored: explored, tops: tops, dir: tmp, progress: progress)
            return Summary(featurePages: pages, seconds: Date().timeIntervalSince(started))
        }
    }

    func writeAll(store: Store, explored: ExploredRun, tops: PairTops, dir: URL, progress: ((String) -> Void)?) throws -> Int {
        let run = explored.run, info = explored.info, cfg = explored.model.config
        func put(_ name: String, _ text: String) throws {
            try Data(text.utf8).write(to: dir.appendingPathComponent(name))
        }
        try put("style.css", HTML.stylesheet)
        let wordPiece = cfg.architecture == .bert
        let vocab = try store.vocabulary(run: run)

        progress?("summary")
        try put("index.html", HTML.page(title: "qkdb run \(run)", root: "", body: summaryBody(info)))

        progress?("codes of the held-out sample")
        let sequences = try explored.heldOutSequences(store: store)
        let codes = try explored.codes(of: sequences)
        let qHist = ActivationHistogram.perFeature(codes: codes.query, width: info.spec.dQuery)
        let kHist = ActivationHistogram.perFeature(codes: codes.key, width: info.spec.dKey)

        progress?("patterns")
        try put("heatmaps.html", HTML.page(title: "patterns", root: "", body: try heatmapBody(explored, sequences: sequences, vocab: vocab, wordPiece: wordPiece)))

        let perHead = tops.heads.map(\.sorted)
        let qPartners = tops.queryPartners.mapValues { $0.flatMap(\.sorted) }
        let kPartners = tops.keyPartners.mapValues { $0.flatMap(\.sorted) }
        try put("heads.html", HTML.page(title: "heads", root: "", body: headsBody(perHead, hasMap: info.pairMap != nil)))
        // The sinks `qkdb sinks` lists, from the same ranking (`Store.sinks`: pairs' importance plus
        // the key-bias term's), so the two never disagree.
        let sinks = info.pairMap?.columns.contains(.importance) == true ? try store.sinks(run: run, threshold: 0.9, topQueries: 3) : []
        try put("sinks.html", HTML.page(title: "sinks", root: "", body: sinksBody(sinks)))

        progress?("feature pages")
        var live: [FeatureSide: [Int]] = [.query: [], .key: []]
        for f in try store.features(run: run) where f.alive { live[f.side, default: []].append(f.index) }
        // Every feature a link can point at gets a page: pairs may name features dead on the held-out sample.
        live[.query] = Array(Set(live[.query] ?? []).union(qPartners.keys)).sorted()
        live[.key] = Array(Set(live[.key] ?? []).union(kPartners.keys)).sorted()
        var cache: [Int: [Int32]] = [:]
        var pages = 0
        for side in [FeatureSide.query, .key] {
            let hist = side == .query ? qHist : kHist
            let sideCodes = side == .query ? codes.query : codes.key
            for f in live[side] ?? [] {
                var view = try FeatureView.load(store: store, run: run, side: side, index: f, vocabulary: vocab, window: window,
                                                top: 0, nHead: cfg.nHead, hasPairMap: false, sequenceCache: &cache)
                view.histogram = hist[f]
                let all = (side == .query ? qPartners[f] : kPartners[f]) ?? []
                view.partners = all
                for n in view.examples.indices {
                    let e = view.examples[n]
                    guard e.sequenceID < sideCodes.count else { continue }
                    let lo = e.position - e.firing
                    view.examples[n].values = (0..<e.tokens.count).map { ReportSite.activation(sideCodes[e.sequenceID], row: lo + $0, feature: f) }
                }
                try put("features/\(side.rawValue)-\(f).html", HTML.page(title: "\(side.rawValue) feature \(f)", root: "../",
                                                                           body: featureBody(view, wordPiece: wordPiece, live: live)))
                pages += 1
            }
        }
        try put("features.html", HTML.page(title: "features", root: "", body: featureIndexBody(live, qHist: qHist, kHist: kHist)))
        return pages
    }

    static func activation(_ a: SparseActivations, row: Int, feature: Int) -> Float {
        guard row >= 0, row < a.rows else { return 0 }
        let r = a.row(row)
        for (i, v) in zip(r.indices, r.values) where Int(i) == feature { return v }
        return 0
    }

    // MARK: pages

    func summaryBody(_ info: RunInfo) -> String {
        var body = "<h1>qkdb run \(info.id): \(HTML.escape(info.spec.name))</h1>"
        body += "<table id=\"run\"><tr><th>model</th><td>\(HTML.escape(info.spec.model ?? ""))</td></tr>"
        body += "<tr><th>layer</th><td>\(info.spec.layer.map(String.init) ?? "")</td></tr><tr><th>heads</th><td>\(info.spec.nHead)</td></tr>"
        body += "<tr><th>d_query × d_key</th><td>\(info.spec.dQuery) × \(info.spec.dKey)</td></tr><tr><th>status</th><td>\(HTML.escape(info.spec.status))</td></tr>"
        body += "<tr><th>pairs</th><td>\(info.pairMap.map { String($0.nnz) } ?? "none")</td></tr></table>"
        body += ReportSite.headline(info.spec.metrics, layer: info.spec.layer)
        body += "<h2>All stored metrics</h2><table id=\"metrics\"><tr><th>metric</th><th>value</th></tr>"
        for (key, value) in ReportSite.flatten(info.spec.metrics) {
            body += "<tr data-metric=\"\(HTML.escape(key))\"><th>\(HTML.escape(key))</th><td class=\"num\">\(HTML.escape(value))</td></tr>"
        }
        return body + "</table>"
    }

    /// The figures a reader looks at first: what patching each pattern in recovers, and the
    /// pattern KL of step 1 and of the pruned map (empty when the run has none of them yet).
    static func headline(_ json: String, layer: Int?) -> String {
        guard let m = (try? JSONSerialization.jsonObject(with: Data(json.utf8))) as? [String: Any] else { return "" }
        var body = ""
        if let eval = m["eval"] as? [String: Any], let results = eval["results"] as? [[String: Any]] {
            body += "<h2>Evaluation: patterns patched into layer \(layer.map(String.init) ?? "?")</h2>"
            body += "<table id=\"evaluation\"><tr><th>pattern</th><th>\(HTML.escape(eval["metricName"] as? String ?? "metric"))</th><th>recovered</th></tr>"
            for r in results {
                let name = r["name"] as? String ?? ""
                let metric = (r["metric"] as? NSNumber).map { String(format: "%.4f", $0.doubleValue) } ?? ""
                let recovered = (r["recovered"] as? NSNumber).map { String(format: "%.3f", $0.doubleValue) } ?? ""
                body += "<tr><th>\(HTML.escape(name))</th><td class=\"num\">\(metric)</td><td class=\"num\">\(recovered)</td></tr>"
            }
            body += "</table>"
        }
        if let step2 = m["step2"] as? [String: Any] {
            body += "<h2>Pair map</h2><table id=\"pairmap\">"
            for (key, label) in [("klUnmasked", "pattern KL, unmasked map"), ("klTrained", "pattern KL, trained mask"), ("klPruned", "pattern KL, pruned map"),
                                 ("entriesAfterPruning", "pairs kept"), ("maskedFractionLive", "share of live map masked"),
                                 ("liveQueryFeatures", "live query features"), ("liveKeyFeatures", "live key features")] {
                guard let v = step2[key] as? NSNumber else { continue }
                body += "<tr><th>\(label)</th><td class=\"num\">\(v)</td></tr>"
            }
            body += "</table>"
        }
        return body + FrontierPlot.section(m)
    }

    /// A run's metrics JSON as (dotted path, value text) rows, numbers as JSON wrote them.
    public static func flatten(_ json: String) -> [(String, String)] {
        guard let obj = try? JSONSerialization.jsonObject(with: Data(json.utf8)) else { return [] }
        var out: [(String, String)] = []
        func walk(_ v: Any, _ path: String) {
            if let d = v as? [String: Any] {
                for k in d.keys.sorted() { walk(d[k]!, path.isEmpty ? k : path + "." + k) }
            } else if let a = v as? [Any] {
                for (n, x) in a.enumerated() { walk(x, "\(path)[\(n)]") }
            } else if let n = v as? NSNumber {
                out.append((path, "\(n)"))
            } else if let s = v as? String {
                out.append((path, s))
            } else {
                out.append((path, "null"))
            }
        }
        walk(obj, "")
        return out
    }

    func heatmapBody(_ explored: ExploredRun, sequences: [[Int32]], vocab: [Int: String], wordPiece: Bool) throws -> String {
        let nHead = explored.model.config.nHead
        var body = "<h1>Attention patterns: true · reconstructed (transcoders) · pruned map</h1>"
        body += "<p>First \(heatmapTokens) positions of held-out sequences; rows are destinations, columns sources; colour is √probability.</p>"
        for (n, seq) in sequences.prefix(prompts).enumerated() {
            let p = try explored.patterns(of: seq)
            let t = seq.count, show = min(t, heatmapTokens)
            let text = TokenText.join(seq.prefix(show).map { vocab[Int($0)] ?? "<\($0)>" }, wordPiece: wordPiece)
            body += "<section class=\"prompt\" id=\"prompt-\(n)\"><h2>held-out sequence \(n)</h2><p class=\"example\">\(HTML.escape(text))</p><div class=\"panels\">"
            for h in 0..<nHead {
                body += "<div class=\"panel\" data-head=\"\(h)\"><h4>head \(h)</h4><div class=\"triple\">"
                let sources: [(String, Tensor?)] = [("true", p.true), ("reconstructed", p.reconstructed), ("pruned map", p.pruned)]
                for (name, tensor) in sources {
                    guard let tensor else { body += "<figure><figcaption>\(name): none</figcaption></figure>"; continue }
                    tensor.data.withUnsafeBufferPointer { buf in
                        let block = UnsafeBufferPointer(rebasing: buf[(h * t * t)..<((h + 1) * t * t)])
                        body += "<figure>" + HTML.heatmap(block, rowStride: t, n: show, cell: 3, label: "head \(h) \(name)") + "<figcaption>\(name)</figcaption></figure>"
                    }
                }
                body += "</div></div>"
            }
            body += "</div></section>"
        }
        return body
    }

    func pairRows(_ rows: [PairRow], link: Bool, root: String) -> String {
        var s = "<table class=\"pairs\"><tr><th>head</th><th>query feature</th><th>key feature</th><th>value</th><th>importance</th><th>mean contribution</th></tr>"
        for r in rows {
            let cls = r.value < 0 ? "neg" : "pos"
            s += "<tr><td>\(r.head)</td><td><a href=\"\(root)features/query-\(r.queryFeature).html\">q\(r.queryFeature)</a></td>"
            s += "<td><a href=\"\(root)features/key-\(r.keyFeature).html\">k\(r.keyFeature)</a></td><td class=\"num \(cls)\">\(NumberText.float(r.value))</td>"
            s += "<td class=\"num\">\(r.importance.map(NumberText.float) ?? "")</td><td class=\"num\">\(r.meanContribution.map(NumberText.float) ?? "")</td></tr>"
        }
        return s + "</table>"
    }

    func headsBody(_ perHead: [[PairRow]], hasMap: Bool) -> String {
        guard hasMap else { return "<h1>Heads</h1><p>This run has no pair map yet.</p>" }
        var body = "<h1>Top pairs per head (by importance)</h1>"
        for (h, rows) in perHead.enumerated() {
            body += "<section class=\"head\" id=\"head-\(h)\"><h2>head \(h)</h2>" + pairRows(rows, link: true, root: "") + "</section>"
        }
        return body
    }

    func sinksBody(_ sinks: [SinkFeature]) -> String {
        var body = "<h1>Sink features</h1><p>Key features firing mostly on BOS/[CLS] (bos fraction ≥ 0.9), ranked as <code>qkdb sinks</code> "
        body += "ranks them: by the attention importance they carry, their pairs' plus the key-bias term B·a<sub>K</sub>'s (shown on its own).</p>"
        guard !sinks.isEmpty else { return body + "<p>No sink features found.</p>" }
        body += "<table id=\"sinks\"><tr><th>key feature</th><th>bos fraction</th><th>density</th><th>total importance</th><th>key-bias importance</th><th>strongest heads: top query features</th></tr>"
        for s in sinks {
            body += "<tr><td><a href=\"features/key-\(s.keyFeature).html\">k\(s.keyFeature)</a></td><td class=\"num\">\(NumberText.double(s.bosFraction))</td>"
            body += "<td class=\"num\">\(s.density.map(NumberText.double) ?? "")</td><td class=\"num\">\(NumberText.double(s.totalImportance))</td>"
            body += "<td class=\"num\">\(NumberText.double(s.keyBiasImportance))</td>"
            let strongest = s.heads.sorted { $0.importance > $1.importance }.prefix(4)
            body += "<td>" + strongest.map { h in "\(h.head): " + h.queries.prefix(3).map { "<a href=\"features/query-\($0.queryFeature).html\">q\($0.queryFeature)</a>" }.joined(separator: " ") }.joined(separator: "; ") + "</td></tr>"
        }
        return body + "</table>"
    }

    func featureIndexBody(_ live: [FeatureSide: [Int]], qHist: [ActivationHistogram], kHist: [ActivationHistogram]) -> String {
        var body = "<h1>Live features</h1><p><label>Go to feature: <select id=\"side\"><option>query</option><option>key</option></select> "
        body += "<input id=\"search\" type=\"number\" min=\"0\" placeholder=\"index\"></label> <button id=\"go\">open</button> <span id=\"msg\"></span></p>"
        let lists = [FeatureSide.query, .key].map { s in "\"\(s.rawValue)\": [" + (live[s] ?? []).map(String.init).joined(separator: ",") + "]" }
        body += "<script>const LIVE = {\(lists.joined(separator: ", "))};"
        body += """
        function go() { const s = document.getElementById('side').value, i = parseInt(document.getElementById('search').value, 10);
          if (LIVE[s].indexOf(i) >= 0) { location.href = 'features/' + s + '-' + i + '.html'; }
          else { document.getElementById('msg').textContent = s + ' feature ' + i + ' is not live in this run'; } }
        document.getElementById('go').onclick = go;
        document.getElementById('search').onkeydown = function (e) { if (e.key === 'Enter') go(); };
        </script>
        """
        for side in [FeatureSide.query, .key] {
            let hist = side == .query ? qHist : kHist
            body += "<h2>\(side.rawValue) features (\((live[side] ?? []).count) live)</h2><p class=\"flist\">"
            body += (live[side] ?? []).map { f in
                let d = f < hist.count ? String(format: "%.4f", hist[f].density) : ""
                return "<a href=\"features/\(side.rawValue)-\(f).html\" title=\"density \(d)\">\(f)</a>"
            }.joined(separator: " ")
            body += "</p>"
        }
        return body
    }

    func featureBody(_ v: FeatureView, wordPiece: Bool, live: [FeatureSide: [Int]]) -> String {
        var body = "<h1>\(v.side.rawValue) feature \(v.index)</h1><table class=\"stats\">"
        if let s = v.stats {
            body += "<tr><th>density</th><td class=\"num\">\(s.density.map(NumberText.double) ?? "")</td></tr>"
            body += "<tr><th>mean activation</th><td class=\"num\">\(s.meanActivation.map(NumberText.double) ?? "")</td></tr>"
            body += "<tr><th>max activation</th><td class=\"num\">\(s.maxActivation.map(NumberText.double) ?? "")</td></tr>"
            body += "<tr><th>bos fraction</th><td class=\"num\">\(s.bosFraction.map(NumberText.double) ?? "")</td></tr>"
        }
        body += "</table>"
        if let h = v.histogram {
            body += "<h2>Activation histogram</h2><p>\(h.firing) of \(h.positions) held-out positions</p>" + HTML.histogram(h)
        }
        body += "<h2>Max-activating examples</h2>"
        let top = max(1e-9, v.examples.map(\.activation).max() ?? 1)
        for e in v.examples {
            body += "<div class=\"example\"><span class=\"act\">\(String(format: "%.3f", e.activation))</span>"
            for (n, p) in e.tokens.enumerated() {
                let a = e.values?[n] ?? (n == e.firing ? e.activation : 0)
                // Shade classes a0…a10 (stylesheet) keep pages small; the value is in the tooltip.
                let level = max(0, min(10, Int((a / top * 10).rounded())))
                let cls = "tok a\(level)" + (n == e.firing ? " fire" : "")
                let title = a > 0 ? " title=\"\(String(format: "%.3f", a))\"" : ""
                body += "<span class=\"\(cls)\"\(title)>\(HTML.escape(TokenText.render(p, first: n == 0, wordPiece: wordPiece)))</span>"
            }
            body += "</div>"
        }
        if v.examples.isEmpty { body += "<p>(none stored)</p>" }
        body += "<h2>Partners on each head</h2>"
        body += v.partners.isEmpty ? "<p>No surviving pairs.</p>" : pairRows(v.partners, link: true, root: "../")
        return body
    }
}

/// The k strongest pairs (by importance, else |value|) seen so far. Most pairs of a large map do
/// not beat the current weakest, so that test is O(1) and the O(k) rescan runs only on a swap.
struct TopPairs {
    let k: Int
    var rows: [PairRow] = []
    var weakest = 0
    var weakestScore = -Float.infinity

    init(k: Int) { self.k = k }

    static func score(_ r: PairRow) -> Float { r.importance ?? abs(r.value) }

    mutating func add(_ r: PairRow) {
        let v = TopPairs.score(r)
        if rows.count < k {
            rows.append(r)
            if rows.count == k { rescan() }
            return
        }
        guard v > weakestScore else { return }
        rows[weakest] = r
        rescan()
    }

    mutating func rescan() {
        weakest = 0; weakestScore = .infinity
        for (n, r) in rows.enumerated() where TopPairs.score(r) < weakestScore { weakest = n; weakestScore = TopPairs.score(r) }
    }

    /// Strongest first.
    var sorted: [PairRow] { rows.sorted { TopPairs.score($0) > TopPairs.score($1) } }
}

/// The report's top lists, gathered in one pass over the map: per head, and per (feature, head) on each side.
struct PairTops {
    var heads: [TopPairs]
    var queryPartners: [Int: [TopPairs]] = [:]
    var keyPartners: [Int: [TopPairs]] = [:]
    let nHead: Int, perFeature: Int

    init(nHead: Int, perHead: Int, perFeature: Int) {
        self.nHead = nHead; self.perFeature = perFeature
        heads = [TopPairs](repeating: TopPairs(k: perHead), count: nHead)
    }

    mutating func add(_ r: PairRow) {
        guard r.head >= 0, r.head < nHead else { return }
        heads[r.head].add(r)
        queryPartners[r.queryFeature, default: [TopPairs](repeating: TopPairs(k: perFeature), count: nHead)][r.head].add(r)
        keyPartners[r.keyFeature, default: [TopPairs](repeating: TopPairs(k: perFeature), count: nHead)][r.head].add(r)
    }
}

