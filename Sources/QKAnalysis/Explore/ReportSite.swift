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
        try put("metrics.html", HTML.page(title: "metrics", root: "", body: metricsBody(info)))
        let labels = try store.labels(run: run)

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
        let attention = try HeadAttention.of(info, store: store) { explored }
        let overview = try HeadsOverview.summarize(store: store, run: run, attention: attention, topPairs: 0)
        try put("heads.html", HTML.page(title: "heads", root: "", body: headsBody(overview, perHead, hasMap: info.pairMap != nil, labels: labels)))
        // The sinks `qkdb sinks` lists, from the same ranking (`Store.sinks`: pairs' importance plus
        // the key-bias term's), so the two never disagree.
        let sinks = info.pairMap?.columns.contains(.importance) == true ? try store.sinks(run: run, threshold: 0.9, topQueries: 3) : []
        try put("sinks.html", HTML.page(title: "sinks", root: "", body: sinksBody(sinks, labels: labels)))

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
                                                                           body: featureBody(view, wordPiece: wordPiece, live: live, labels: labels)))
                pages += 1
            }
        }
        try put("features.html", HTML.page(title: "features", root: "", body: featureIndexBody(live, qHist: qHist, kHist: kHist, labels: labels)))
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
        return body + "<p>Every stored figure under its raw key: <a href=\"metrics.html\">all metrics</a>.</p>"
    }

    /// Every stored metric under its dotted key, for those who want the raw record.
    func metricsBody(_ info: RunInfo) -> String {
        var body = "<h1>All stored metrics of run \(info.id)</h1><table id=\"metrics\"><tr><th>metric</th><th>value</th></tr>"
        for (key, value) in ReportSite.flatten(info.spec.metrics) {
            body += "<tr data-metric=\"\(HTML.escape(key))\"><th>\(HTML.escape(key))</th><td class=\"num\">\(HTML.escape(value))</td></tr>"
        }
        return body + "</table>"
    }

    /// A number as the summary shows it: four significant figures.
    static func figure(_ v: Any?) -> String? {
        guard let n = v as? NSNumber else { return nil }
        return NumberText.short(n.doubleValue)
    }

    /// The figures a reader looks at first, under names: what patching each pattern in recovers,
    /// step 1's held-out figures and the sparsity it chose, and the pair map's (empty rows are
    /// left out for a run that has not reached a stage).
    static func headline(_ json: String, layer: Int?) -> String {
        guard let m = (try? JSONSerialization.jsonObject(with: Data(json.utf8))) as? [String: Any] else { return "" }
        var body = ""
        func table(_ id: String, _ title: String, _ rows: [(String, String?)]) {
            let shown = rows.compactMap { r in r.1.map { (r.0, $0) } }
            guard !shown.isEmpty else { return }
            body += "<h2>\(title)</h2><table id=\"\(id)\">"
            for (name, value) in shown { body += "<tr><th>\(name)</th><td class=\"num\">\(HTML.escape(value))</td></tr>" }
            body += "</table>"
        }
        if let eval = m["eval"] as? [String: Any], let results = eval["results"] as? [[String: Any]] {
            body += "<h2>Evaluation: patterns patched into layer \(layer.map(String.init) ?? "?")</h2>"
            body += "<p>\(figure(eval["sequences"]) ?? "?") held-out sequences.</p>"
            body += "<table id=\"evaluation\"><tr><th>pattern</th><th>\(HTML.escape(eval["metricName"] as? String ?? "metric"))</th><th>recovered</th></tr>"
            for r in results {
                let name = (r["name"] as? String ?? "").replacingOccurrences(of: "_", with: " ")
                body += "<tr><th>\(HTML.escape(name))</th><td class=\"num\">\(figure(r["metric"]) ?? "")</td><td class=\"num\">\(figure(r["recovered"]) ?? "")</td></tr>"
            }
            body += "</table>"
        }
        if let s1 = m["step1"] as? [String: Any] {
            func pair(_ a: String, _ b: String) -> String? { figure(s1[a]).flatMap { x in figure(s1[b]).map { "\(x) / \($0)" } } }
            table("step1", "Step 1: transcoders (held-out)", [
                ("pattern KL, both reconstructed (nats per query row)", figure(s1["klFull"])),
                ("pattern KL, q̂ only / k̂ only", pair("klQOnly", "klKOnly")),
                ("baselines: uniform attention / mean pattern", pair("baselineUniformKL", "baselineMeanPatternKL")),
                ("L0 query / key (features firing per token)", pair("l0Query", "l0Key")),
                ("live features query / key", pair("liveQuery", "liveKey")),
                ("explained variance of q / k", pair("explainedVarianceQ", "explainedVarianceK")),
                ("top-1 source agreement", figure(s1["top1Agreement"])),
                ("training speed (tokens/s)", figure(s1["tokensPerSecond"])),
            ])
        }
        if let s2 = m["step2"] as? [String: Any] {
            let search = s2["penalty_search"] as? [String: Any]
            table("pairmap", "Step 2: the pair map (held-out)", [
                ("pairs kept", figure(s2["entriesAfterPruning"])),
                ("co-firing entries trained", figure(s2["entriesConsidered"])),
                ("share of the live map masked", figure(s2["maskedFractionLive"])),
                ("share of the whole map masked", figure(s2["maskedFractionWhole"])),
                ("pattern KL, unmasked map", figure(s2["klUnmasked"])),
                ("pattern KL, trained mask", figure(s2["klTrained"])),
                ("pattern KL, pruned map", figure(s2["klPruned"])),
                ("mask penalty μ" + (search != nil ? " (chosen from the data)" : ""), figure(s2["penalty"])),
                ("live query features", figure(s2["liveQueryFeatures"])),
                ("live key features", figure(s2["liveKeyFeatures"])),
            ])
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

    /// A feature as a link to its page, with its label beside it.
    static func featureLink(_ side: FeatureSide, _ f: Int, root: String, labels: FeatureLabels) -> String {
        let label = labels[side, f].map { " <span class=\"label\">\(HTML.escape($0))</span>" } ?? ""
        return "<a href=\"\(root)features/\(side.rawValue)-\(f).html\">\(side == .query ? "q" : "k")\(f)</a>\(label)"
    }

    static func short(_ x: Float?) -> String { x.map { NumberText.short(Double($0)) } ?? "" }

    func pairRows(_ rows: [PairRow], link: Bool, root: String, labels: FeatureLabels) -> String {
        var s = "<table class=\"pairs\"><tr><th>head</th><th>query feature</th><th>key feature</th><th>value</th><th>importance</th><th>mean contribution</th></tr>"
        for r in rows {
            let cls = r.value < 0 ? "neg" : "pos"
            s += "<tr><td>\(r.head)</td><td>\(ReportSite.featureLink(.query, r.queryFeature, root: root, labels: labels))</td>"
            s += "<td>\(ReportSite.featureLink(.key, r.keyFeature, root: root, labels: labels))</td><td class=\"num \(cls)\">\(ReportSite.short(r.value))</td>"
            s += "<td class=\"num\">\(ReportSite.short(r.importance))</td><td class=\"num\">\(ReportSite.short(r.meanContribution))</td></tr>"
        }
        return s + "</table>"
    }

    /// The table `qkdb heads` prints (one row per head: where it attends, its pair count, its best
    /// pair), then each head's top pairs.
    func headsBody(_ overview: [HeadSummary], _ perHead: [[PairRow]], hasMap: Bool, labels: FeatureLabels) -> String {
        var body = "<h1>Heads at a glance</h1><p>Attention shares are means over held-out query positions p ≥ 1 of the true pattern "
        body += "(as <code>qkdb heads</code> prints them); entropy in nats.</p>"
        let rope = overview.contains { !$0.peakOffsets.isEmpty }
        body += "<table id=\"heads\"><tr><th>head</th><th>role</th><th>first position</th><th>previous token</th><th>same token</th><th>entropy</th>"
        body += "<th>mean offset</th><th>pairs</th>\(rope ? "<th>peak offsets</th>" : "")<th>top pair</th></tr>"
        for s in overview {
            let a = s.attention
            func f(_ x: Double?) -> String { x.map(NumberText.short) ?? "" }
            body += "<tr data-head=\"\(s.head)\"><td><a href=\"#head-\(s.head)\">\(s.head)</a></td><td>\(a?.role ?? "")</td><td class=\"num\">\(f(a?.firstPosition))</td>"
            body += "<td class=\"num\">\(f(a?.previousToken))</td><td class=\"num\">\(f(a?.sameToken))</td><td class=\"num\">\(f(a?.entropy))</td>"
            body += "<td class=\"num\">\(f(a?.meanOffset))</td><td class=\"num\">\(s.pairs)</td>"
            if rope { body += "<td>" + s.peakOffsets.prefix(3).map { "\($0.offset): \(Int((100 * $0.share).rounded()))%" }.joined(separator: ", ") + "</td>" }
            let best = s.head < perHead.count ? perHead[s.head].first : nil
            body += "<td>" + (best.map { ReportSite.featureLink(.query, $0.queryFeature, root: "", labels: labels) + " × " + ReportSite.featureLink(.key, $0.keyFeature, root: "", labels: labels) } ?? "") + "</td></tr>"
        }
        body += "</table>"
        guard hasMap else { return body + "<p>This run has no pair map yet.</p>" }
        body += "<h2>Top pairs per head (by importance)</h2>"
        for (h, rows) in perHead.enumerated() {
            body += "<section class=\"head\" id=\"head-\(h)\"><h3>head \(h)</h3>" + pairRows(rows, link: true, root: "", labels: labels) + "</section>"
        }
        return body
    }

    func sinksBody(_ sinks: [SinkFeature], labels: FeatureLabels) -> String {
        var body = "<h1>Sink features</h1><p>Key features firing mostly on BOS/[CLS] (bos fraction ≥ 0.9), ranked as <code>qkdb sinks</code> "
        body += "ranks them: by the attention importance they carry, their pairs' plus the key-bias term B·a<sub>K</sub>'s (shown on its own).</p>"
        guard !sinks.isEmpty else { return body + "<p>No sink features found.</p>" }
        body += "<table id=\"sinks\"><tr><th>key feature</th><th>bos fraction</th><th>density</th><th>total importance</th><th>key-bias importance</th><th>strongest heads: top query features</th></tr>"
        for s in sinks {
            body += "<tr><td>\(ReportSite.featureLink(.key, s.keyFeature, root: "", labels: labels))</td><td class=\"num\">\(NumberText.short(s.bosFraction))</td>"
            body += "<td class=\"num\">\(s.density.map(NumberText.short) ?? "")</td><td class=\"num\">\(NumberText.short(s.totalImportance))</td>"
            body += "<td class=\"num\">\(NumberText.short(s.keyBiasImportance))</td>"
            let strongest = s.heads.sorted { $0.importance > $1.importance }.prefix(4)
            body += "<td>" + strongest.map { h in "\(h.head): " + h.queries.prefix(3).map { ReportSite.featureLink(.query, $0.queryFeature, root: "", labels: labels) }.joined(separator: " ") }.joined(separator: "; ") + "</td></tr>"
        }
        return body + "</table>"
    }

    func featureIndexBody(_ live: [FeatureSide: [Int]], qHist: [ActivationHistogram], kHist: [ActivationHistogram], labels: FeatureLabels) -> String {
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
                let label = labels[side, f].map { " · " + HTML.escape($0) } ?? ""
                return "<a href=\"features/\(side.rawValue)-\(f).html\" title=\"density \(d)\(label)\">\(f)</a>"
            }.joined(separator: " ")
            body += "</p>"
        }
        return body
    }

    func featureBody(_ v: FeatureView, wordPiece: Bool, live: [FeatureSide: [Int]], labels: FeatureLabels) -> String {
        var body = "<h1>\(v.side.rawValue) feature \(v.index)</h1>"
        if let label = labels[v.side, v.index] { body += "<p class=\"label\" id=\"label\">\(HTML.escape(label))</p>" }
        body += "<table class=\"stats\">"
        if let s = v.stats {
            body += "<tr><th>density</th><td class=\"num\">\(s.density.map(NumberText.short) ?? "")</td></tr>"
            body += "<tr><th>mean activation</th><td class=\"num\">\(s.meanActivation.map(NumberText.short) ?? "")</td></tr>"
            body += "<tr><th>max activation</th><td class=\"num\">\(s.maxActivation.map(NumberText.short) ?? "")</td></tr>"
            body += "<tr><th>bos fraction</th><td class=\"num\">\(s.bosFraction.map(NumberText.short) ?? "")</td></tr>"
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
        body += v.partners.isEmpty ? "<p>No surviving pairs.</p>" : pairRows(v.partners, link: true, root: "../", labels: labels)
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

