import Foundation
import QKTrain
import QKAnalysis

/// The closing tables of `qkdb run` / `qkdb eval`, in the spirit of the paper's: dictionaries,
/// pair map before and after pruning, pattern KL per stage, and what each patched pattern recovers.
enum Summary {
    static func table(_ rows: [[String]]) -> String {
        guard let n = rows.map(\.count).max() else { return "" }
        var widths = [Int](repeating: 0, count: n)
        for r in rows { for (i, c) in r.enumerated() { widths[i] = max(widths[i], c.count) } }
        return rows.map { r in
            r.enumerated().map { i, c in i == 0 ? c.padding(toLength: widths[i], withPad: " ", startingAt: 0)
                                              : String(repeating: " ", count: widths[i] - c.count) + c }
                .joined(separator: "  ")
        }.joined(separator: "\n")
    }

    static func f(_ x: Double, _ digits: Int = 3) -> String { x.isFinite ? String(format: "%.\(digits)f", x) : "–" }
    static func pct(_ x: Double, _ digits: Int = 2) -> String { String(format: "%.\(digits)f%%", 100 * x) }

    static func dictionaries(_ m: Step1Metrics, dHidden: Int) -> String {
        table([
            ["dictionaries (held-out)", "query", "key"],
            ["features", "\(dHidden)", "\(dHidden)"],
            ["L0 (active per token)", f(m.l0Query, 1), f(m.l0Key, 1)],
            ["live features", "\(m.liveQuery) (\(pct(Double(m.liveQuery) / Double(dHidden), 0)))", "\(m.liveKey) (\(pct(Double(m.liveKey) / Double(dHidden), 0)))"],
            ["explained variance", f(m.explainedVarianceQ), f(m.explainedVarianceK)],
        ])
    }

    static func patternKL(step1 m: Step1Metrics, step2 p: PairMapMetrics?) -> String {
        var rows: [[String]] = [["pattern KL (nats per query row, held-out)", "KL"],
                                ["transcoders: q̂·k̂", f(m.klFull)], ["transcoders: q̂·k (q-only)", f(m.klQOnly)],
                                ["transcoders: q·k̂ (k-only)", f(m.klKOnly)]]
        if let p {
            rows += [["pair map, unmasked", f(p.klUnmasked)], ["pair map, trained mask", f(p.klTrained)], ["pair map, pruned", f(p.klPruned)]]
        }
        rows += [["baseline: uniform attention", f(m.baselineUniformKL)], ["baseline: mean pattern", f(m.baselineMeanPatternKL)],
                 ["top-1 source agreement (q̂·k̂)", f(m.top1Agreement)]]
        return table(rows)
    }

    static func pairMap(_ p: PairMapMetrics, nHead: Int, dQuery: Int, dKey: Int) -> String {
        let whole = dQuery * dKey * nHead
        let live = p.liveQueryFeatures * p.liveKeyFeatures * nHead
        return table([
            ["pair map [d_Q, d_K, n_head]", "entries"],
            ["whole map", "\(whole)"],
            ["live features only", "\(live)"],
            ["co-firing in-distribution (trained)", "\(p.entriesConsidered)"],
            ["kept after pruning", "\(p.entriesAfterPruning)"],
            ["masked: of live map / of whole map", "\(pct(p.maskedFractionLive)) / \(pct(p.maskedFractionWhole, 3))"],
        ])
    }

    static func evaluationTable(_ r: PatchEvaluator.Report) -> String {
        let lm = r.metricName == "cross_entropy"
        var rows: [[String]] = [["patched pattern", lm ? "CE loss" : "embedding cosine", lm ? "logit KL" : "", "recovered"]]
        rows.append(["clean (no patch)", f(r.clean, 4), lm ? f(0, 4) : "", f(1)])
        for x in r.results {
            rows.append([x.name, f(x.metric, 4), x.logitKL.map { f($0, 4) } ?? "", f(x.recovered)])
        }
        return table(rows)
    }

    /// What `qkdb eval` added to the run's evaluation history, and which record summaries show.
    static func evaluationAdded(_ a: EvaluationHistory.Added, run: Int64) -> String {
        func seqs(_ n: Int?) -> String { n.map { "\($0) sequences" } ?? "sequences not recorded" }
        var line = "run \(run): added evaluation \(a.number) of \(a.count) (\(seqs(a.sequences)))"
        line += a.shown == a.number ? "; runs and report now show it" : "; runs and report still show evaluation \(a.shown) (\(seqs(a.shownSequences)), the most evaluated)"
        return line
    }

    /// The model-level table of a store decomposed layer by layer (`LayerOverview`).
    static func layers(_ rows: [LayerOverview]) -> String {
        func o(_ x: Double?, _ digits: Int = 3) -> String { x.map { f($0, digits) } ?? "–" }
        return table([["layer", "run", "status", "L0 q / k", "live q / k", "pairs kept", "KL transcoders", "KL pruned", "recovered (pruned map)", "attention on first position"]]
            + rows.map { r in
                [r.layer.map(String.init) ?? "–", String(r.run), r.status, "\(o(r.l0Query, 1)) / \(o(r.l0Key, 1))",
                 "\(r.liveQuery.map(String.init) ?? "–") / \(r.liveKey.map(String.init) ?? "–")", r.pairs.map(String.init) ?? "–",
                 o(r.klTranscoders), o(r.klPruned), o(r.recoveredPrunedMap), o(r.firstPositionShare)]
            })
    }

    static func timings(_ t: [(stage: String, seconds: Double)]) -> String {
        table([["stage", "seconds"]] + t.map { [$0.stage, f($0.seconds, 1)] } + [["total", f(t.reduce(0) { $0 + $1.seconds }, 1)]])
    }
}
