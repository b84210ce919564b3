import ArgumentParser
import Foundation
import QKStore

/// `qkdb runs` — what is in a store: one line per run with its shape and pair-map facts.
struct RunsCommand: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "runs", abstract: "List the runs in a store.")

    @OptionGroup var location: StoreLocation
    @Option(help: "table, csv or json.") var format: StoreOutputFormat = .table

    func run() throws {
        let store = try Store(path: location.store)
        let runs = try store.runs()
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
}
