import ArgumentParser
import Foundation
import QKStore

/// `qkdb sinks` — attention-sink key features (firing on BOS / [CLS]) and, per head, the query
/// features whose pairs into them carry the most attention importance.
struct SinksCommand: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "sinks", abstract: "Key features that make heads attend to the first token, and the query features that use them.")

    @OptionGroup var location: StoreLocation
    @Option(name: .customLong("run"), help: "Run id (see `qkdb runs`).") var runID: Int64
    @Option(help: "Minimum share of a key feature's activation on BOS to count as a sink.") var threshold: Double = 0.9
    @Option(help: "Query features per sink and head; 0 = all.") var top: Int = 5
    @Option(help: "Only this head: sinks ranked by the importance they carry on it.") var head: Int?
    @Option(help: "table, csv or json.") var format: StoreOutputFormat = .table

    func validate() throws {
        guard top >= 0 else { throw StoreError("--top must be 0 (all) or positive") }
        guard threshold.isFinite else { throw StoreError("--threshold must be a number") }
    }

    func run() throws {
        let store = try Store(path: location.store)
        let info = try store.run(runID)
        if let h = head, h < 0 || h >= info.spec.nHead { throw StoreError("head \(h) is out of range for run \(runID) (n_head \(info.spec.nHead))") }
        let all = try store.sinks(run: runID, threshold: threshold, topQueries: top)
        let sinks = head.map { all.onHead($0) } ?? all
        let labels = try store.labels(run: runID)
        var t = ResultTable(headers: ["key_feature", "bos_fraction", "key_density", "total_importance", "key_bias_importance", "head", "head_importance",
                                      "head_key_bias_importance", "query_feature", "importance", "query_density", "key_label", "query_label"])
        for s in sinks {
            let lead: [ResultTable.Cell] = [.int(s.keyFeature), .double(s.bosFraction), .init(s.density), .double(s.totalImportance), .double(s.keyBiasImportance)]
            let keyLabel = ResultTable.Cell(labels[.key, s.keyFeature])
            if s.heads.isEmpty { t.rows.append(lead + [.null, .null, .null, .null, .null, .null, keyLabel, .null]) }
            for h in s.heads {
                let head: [ResultTable.Cell] = [.int(h.head), .double(h.importance), .double(h.biasImportance)]
                for q in h.queries {
                    t.rows.append(lead + head + [.int(q.queryFeature), .float(q.importance), .init(q.density), keyLabel, .init(labels[.query, q.queryFeature])])
                }
                if h.queries.isEmpty { t.rows.append(lead + head + [.null, .null, .null, keyLabel, .null]) }
            }
        }
        let lead = ["key_feature", "bos_fraction", "key_density", "total_importance", "key_bias_importance", "key_label"]
        printOut((format == .table ? t.blankingRepeats([(["key_feature"], lead), (["key_feature", "head"], ["head", "head_importance", "head_key_bias_importance"])]) : t).render(format))
    }
}
