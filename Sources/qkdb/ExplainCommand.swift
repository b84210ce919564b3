import ArgumentParser
import Foundation
import QKStore
import QKAnalysis

/// `qkdb explain` — runs the model on a prompt and splits one head's attention score into
/// feature-pair terms, the key-bias term B·a_K, the row constant ⟨q̂, b_dec,K⟩ and the error.
struct ExplainCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "explain", abstract: "Split one prompt's attention score into feature-pair contributions.",
        discussion: """
        Positions are token indices (0 = the first token, BOS/[CLS] included) or token text (first match, \
        case-insensitive, ignoring a leading space/Ġ/##). Without --src, every allowed source is listed and the \
        attention-weighted mean score is split.
        """)

    @OptionGroup var location: StoreLocation
    @Option(name: .customLong("run"), help: "Run id (see `qkdb runs`).") var runID: Int64
    @Option(help: "The prompt.") var text: String
    @Option(help: "Head.") var head: Int
    @Option(help: "Destination (query) position: index or token text.") var dest: String
    @Option(help: "Source (key) position: index or token text.") var src: String?
    @Option(help: "Pairs to show on each sign; 0 = all.") var top: Int = 8
    @Option(help: "table, csv (the feature pairs alone, every one) or json.") var format: StoreOutputFormat = .table
    @Flag(help: "Print to stderr how long loading and explaining took.") var timing = false
    @OptionGroup var model: RunModelArgument

    func validate() throws {
        guard top >= 0 else { throw PipelineError("--top must be 0 (all) or positive") }
    }

    func run() throws {
        let started = Date()
        let store = try Store(path: location.store)
        let explored = try ExploredRun.open(store: store, run: runID, modelPath: model.model)
        let loaded = Date()
        let tokens = try explored.explainer.tokens(for: text, bos: explored.options.bos)
        let pieces = tokens.map { explored.model.tokenizer.tokenString($0) }
        let p = try PositionArgument.resolve(dest, in: pieces, what: "--dest")
        let e = try explored.explainer.explain(tokens: tokens, head: head, dest: p)
        var chosen: ScoreExplanation
        if let src {
            let s = try PositionArgument.resolve(src, in: pieces, what: "--src")
            guard let found = e.scores.first(where: { $0.src == s }) else {
                throw PipelineError("--src \(s) is after --dest \(p): a causal model's position \(p) cannot attend to it")
            }
            chosen = found
        } else {
            chosen = e.weightedSummary()
        }
        let labels = try store.labels(run: runID)
        let shown = top == 0 ? chosen.pairs.count : top
        switch format {
        case .table: printOut(ExplainText.table(e, chosen, top: shown, labels: labels))
        case .json: printOut(ExplainText.json(e, chosen, top: shown, labels: labels))
        case .csv: printOut(ExplainText.pairTable(chosen.pairs, of: chosen, labels: labels).render(.csv))
        }
        if timing {
            let now = Date()
            FileHandle.standardError.write(Data(String(format: "explain: load %.3f s, explain %.3f s\n",
                                                       loaded.timeIntervalSince(started), now.timeIntervalSince(loaded)).utf8))
        }
    }
}

/// A position given as an index or as token text.
enum PositionArgument {
    static func resolve(_ arg: String, in pieces: [String], what: String) throws -> Int {
        if let n = Int(arg) {
            guard n >= 0, n < pieces.count else { throw PipelineError("\(what) \(n) is outside the prompt's \(pieces.count) tokens") }
            return n
        }
        let want = TokenText.normalised(arg)
        if let n = pieces.firstIndex(where: { TokenText.normalised($0) == want }) { return n }
        throw PipelineError("\(what) \"\(arg)\" is not a token of the prompt (tokens: \(pieces.map { "\"\($0)\"" }.joined(separator: " ")))")
    }
}

/// The text and JSON forms of an explanation.
enum ExplainText {
    static func label(_ pieces: [String], _ n: Int) -> String { "\(n):\(pieces[n].replacingOccurrences(of: "\n", with: "⏎"))" }

    /// Pair contributions with their share of all pairs' |contribution| and both labels.
    static func pairTable(_ rows: [PairContribution], of c: ScoreExplanation, labels: FeatureLabels) -> ResultTable {
        // share: of the total |contribution| of all pairs, so it stays meaningful when the score is near 0.
        let mass = max(1e-12, c.pairs.reduce(0.0) { $0 + abs(Double($1.contribution)) })
        var t = ResultTable(headers: ["query_feature", "key_feature", "a_query", "a_key", "contribution", "share_of_abs_pairs", "stored_value",
                                      "query_label", "key_label"])
        t.rows = rows.map { r in
            [.int(r.queryFeature), .int(r.keyFeature), .float(r.queryActivation), .float(r.keyActivation), .float(r.contribution),
             .double(Double(r.contribution) / mass), .init(r.storedValue), .init(labels[.query, r.queryFeature]), .init(labels[.key, r.keyFeature])]
        }
        return t
    }

    static func table(_ e: PromptExplanation, _ c: ScoreExplanation, top: Int, labels: FeatureLabels) -> String {
        let pieces = e.tokenText
        var out = "head \(e.head)  dest \(label(pieces, e.dest))  "
        out += c.src >= 0 ? "src \(label(pieces, c.src))\n" : "all sources (attention-weighted mean score)\n\n"
        if c.src >= 0 { out += "\n" }
        var split = ResultTable(headers: ["term", "score"])
        let pos = c.pairs.filter { $0.contribution > 0 }, neg = c.pairs.filter { $0.contribution < 0 }
        let shownPos = pos.prefix(top), shownNeg = neg.prefix(top)
        let rest = c.pairs.reduce(0.0) { $0 + Double($1.contribution) } - shownPos.reduce(0.0) { $0 + Double($1.contribution) } - shownNeg.reduce(0.0) { $0 + Double($1.contribution) }
        split.rows = [[.text("true score"), .float(c.trueScore)],
                      [.text("reconstructed (transcoders)"), .float(c.reconstructedScore)],
                      [.text("pruned map (step 2)"), .init(c.prunedScore.isNaN ? nil : c.prunedScore)],
                      [.text("= \(shownPos.count) top positive pairs"), .float(Float(shownPos.reduce(0.0) { $0 + Double($1.contribution) }))],
                      [.text("+ \(shownNeg.count) top negative pairs"), .float(Float(shownNeg.reduce(0.0) { $0 + Double($1.contribution) }))],
                      [.text("+ \(c.pairs.count - shownPos.count - shownNeg.count) other pairs"), .float(Float(rest))],
                      [.text("+ key-bias term B·a_K"), .float(c.keyBias)],
                      [.text("+ row constant ⟨q̂, b_dec,K⟩ (constant along the row without RoPE)"), .float(c.rowConstant)],
                      [.text("+ error (true − reconstructed)"), .float(c.error)]]
        out += split.render(.table) + "\n"
        for (title, rows) in [("positive pairs", Array(shownPos)), ("negative (inhibitory) pairs", Array(shownNeg))] {
            // stored_value: the pair's weight in the pruned map (blank: step 2 pruned it).
            out += "\(title):\n" + (rows.isEmpty ? "(none)\n" : pairTable(rows, of: c, labels: labels).render(.table)) + "\n"
        }
        var marginal = ResultTable(headers: ["side", "feature", "sum_of_its_pairs", "label"])
        for (side, isQuery) in [(FeatureSide.query, true), (.key, false)] {
            marginal.rows += c.marginals(query: isQuery).prefix(top).map { [.text(side.rawValue), .int($0.feature), .float(Float($0.contribution)), .init(labels[side, $0.feature])] }
        }
        out += "pair terms summed per feature:\n" + marginal.render(.table) + "\n"
        var row = ResultTable(headers: ["src", "token", "true", "reconstructed", "pruned", "bar (true)", "top pair"])
        row.rows = e.sources.map { s in
            let top = e.scores[s - e.sources.lowerBound].pairs.first
            return [.int(s), .text(pieces[s].replacingOccurrences(of: "\n", with: "⏎")), .float(e.truePattern[s]), .float(e.reconstructedPattern[s]),
                    e.prunedPattern.isEmpty ? .null : .float(e.prunedPattern[s]),
                    .text(String(repeating: "█", count: Int((e.truePattern[s] * 30).rounded()))),
                    .text(top.map { "q\($0.queryFeature)×k\($0.keyFeature) \(String(format: "%+.3f", $0.contribution))" } ?? "")]
        }
        out += "attention row from \(label(pieces, e.dest)):\n" + row.render(.table)
        return out
    }

    static func json(_ e: PromptExplanation, _ c: ScoreExplanation, top: Int, labels: FeatureLabels) -> String {
        func pairs(_ rows: [PairContribution]) -> String { pairTable(rows, of: c, labels: labels).jsonArray() }
        func marginals(_ m: [(feature: Int, contribution: Double)], _ n: Int, _ side: FeatureSide) -> String {
            "[" + m.prefix(n).map { "{\"feature\": \($0.feature), \"contribution\": \(ResultTable.Cell.double($0.contribution).jsonText), \"label\": \(ResultTable.Cell(labels[side, $0.feature]).jsonText)}" }.joined(separator: ", ") + "]"
        }
        func floats(_ v: [Float]) -> String { "[" + v.map { ResultTable.Cell.float($0).jsonText }.joined(separator: ", ") + "]" }
        let pos = Array(c.pairs.filter { $0.contribution > 0 }.prefix(top)), neg = Array(c.pairs.filter { $0.contribution < 0 }.prefix(top))
        return """
        {"head": \(e.head), "dest": \(e.dest), "src": \(c.src >= 0 ? String(c.src) : "null"), \
        "tokens": [\(e.tokenText.map(ResultTable.jsonString).joined(separator: ", "))], \
        "true_score": \(ResultTable.Cell.float(c.trueScore).jsonText), "reconstructed_score": \(ResultTable.Cell.float(c.reconstructedScore).jsonText), \
        "pruned_score": \(ResultTable.Cell.float(c.prunedScore).jsonText), "key_bias": \(ResultTable.Cell.float(c.keyBias).jsonText), \
        "row_constant": \(ResultTable.Cell.float(c.rowConstant).jsonText), "error": \(ResultTable.Cell.float(c.error).jsonText), \
        "pair_sum": \(ResultTable.Cell.double(c.pairs.reduce(0.0) { $0 + Double($1.contribution) }).jsonText), "pair_count": \(c.pairs.count), \
        "positive_pairs": \(pairs(pos)), "negative_pairs": \(pairs(neg)), \
        "by_query_feature": \(marginals(c.marginals(query: true), top, .query)), "by_key_feature": \(marginals(c.marginals(query: false), top, .key)), \
        "sources": [\(e.sources.lowerBound), \(e.sources.upperBound)], "true_pattern": \(floats(e.truePattern)), \
        "reconstructed_pattern": \(floats(e.reconstructedPattern)), "pruned_pattern": \(e.prunedPattern.isEmpty ? "null" : floats(e.prunedPattern))}

        """
    }
}
