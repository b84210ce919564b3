import ArgumentParser
import Foundation
import QKStore
import QKAnalysis

/// `qkdb runs` — what is in a store: one line per run with its shape and pair-map facts.
struct RunsCommand: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "runs", abstract: "List the runs in a store.")

    @OptionGroup var location: StoreLocation
    @Option(help: "table, csv or json.") var format: StoreOutputFormat = .table
    @Flag(help: "List every stored evaluation of every run (the figures elsewhere are the shown one's).") var evaluations = false
    @Flag(help: "One row per trained run, by layer: L0, live features, pairs kept, pattern KL, what the pruned map recovers, attention on the first position.") var layers = false

    func run() throws {
        let store = try Store(path: location.store)
        let runs = try store.runs()
        if evaluations { return printOut(Self.evaluationTable(runs).render(format)) }
        if layers { return printOut(Self.layerTable(try LayerOverview.all(in: store)).render(format)) }
        var t = ResultTable(headers: ["id", "name", "kind", "status", "model", "architecture", "layer", "n_head", "n_kv_head", "d_head", "d_model",
                                      "d_query", "d_key", "pairs", "values", "max_abs_error", "created_at", "updated_at", "config", "metrics"])
        for r in runs {
            let s = r.spec
            let maxError = r.pairMap.map { m in m.maxAbsError.values.max() ?? 0 }
            t.rows.append([.int(Int(r.id)), .text(s.name), .text(s.kind.rawValue), .text(s.status), .init(s.model), .init(s.architecture),
                           .init(s.layer), .int(s.nHead), .init(s.nKVHead), .init(s.dHead), .init(s.dModel), .int(s.dQuery), .int(s.dKey),
                           .init(r.pairMap?.nnz), .init(r.pairMap?.codec.rawValue), .init(maxError), .text(r.createdAt), .text(r.updatedAt),
                           .json(s.config), .json(s.metrics)])
        }
        if format == .table {
            // The wide JSON columns and timestamps stay out of the terminal view; csv/json carry them.
            let keep = t.headers.indices.filter { !["config", "metrics", "updated_at", "architecture", "n_kv_head", "d_head", "d_model"].contains(t.headers[$0]) }
            t = ResultTable(headers: keep.map { t.headers[$0] }, rows: t.rows.map { row in keep.map { row[$0] } })
        }
        printOut(t.render(format))
    }

    static func layerTable(_ rows: [LayerOverview]) -> ResultTable {
        var t = ResultTable(headers: ["layer", "run", "name", "status", "l0_query", "l0_key", "live_query", "live_key", "d_query", "d_key", "pairs",
                                      "kl_transcoders", "kl_pruned", "recovered_reconstruction", "recovered_pruned_map", "first_position_share"])
        t.rows = rows.map { r in
            [.init(r.layer), .int(Int(r.run)), .text(r.name), .text(r.status), .init(r.l0Query), .init(r.l0Key), .init(r.liveQuery), .init(r.liveKey),
             .int(r.dQuery), .int(r.dKey), .init(r.pairs), .init(r.klTranscoders), .init(r.klPruned), .init(r.recoveredReconstruction),
             .init(r.recoveredPrunedMap), .init(r.firstPositionShare)]
        }
        return t
    }

    /// One row per evaluation record: when, on how much, and each patched pattern's metric and
    /// recovered share; `shown` marks the record summaries and reports use.
    static func evaluationTable(_ runs: [RunInfo]) -> ResultTable {
        var records: [(run: Int64, number: Int, shown: Bool, record: [String: Any])] = []
        var patterns: [String] = []
        for r in runs {
            let m = (try? JSONSerialization.jsonObject(with: Data(r.spec.metrics.utf8))) as? [String: Any] ?? [:]
            let all = m["evaluations"] as? [[String: Any]] ?? ((m["eval"] as? [String: Any]).map { [$0] } ?? [])
            let shown = EvaluationHistory.shownIndex(all)
            for (i, e) in all.enumerated() {
                records.append((r.id, i + 1, i == shown, e))
                for x in e["results"] as? [[String: Any]] ?? [] { if let n = x["name"] as? String, !patterns.contains(n) { patterns.append(n) } }
            }
        }
        var t = ResultTable(headers: ["run", "evaluation", "shown", "evaluated_at", "sequences", "tokens", "metric", "clean"]
                            + patterns.flatMap { [$0, "\($0)_recovered"] })
        for e in records {
            let results = e.record["results"] as? [[String: Any]] ?? []
            func number(_ v: Any?) -> ResultTable.Cell { (v as? NSNumber).map { .double($0.doubleValue) } ?? .null }
            var row: [ResultTable.Cell] = [.int(Int(e.run)), .int(e.number), .text(e.shown ? "yes" : "no"), .init(e.record["evaluated_at"] as? String),
                                           .init(e.record["sequences"] as? Int), .init(e.record["tokens"] as? Int),
                                           .init(e.record["metricName"] as? String), number(e.record["clean"])]
            for p in patterns {
                let x = results.first { $0["name"] as? String == p }
                row += [number(x?["metric"]), number(x?["recovered"])]
            }
            t.rows.append(row)
        }
        return t
    }
}
