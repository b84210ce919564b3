import ArgumentParser
import Foundation
import QKStore
import QKAnalysis

/// `qkdb heads` — every head of a run at a glance: where it attends (first position, previous
/// token, same token; entropy; mean look-back), its share of the pruned map, and its top pairs
/// with their features' labels.
struct HeadsCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "heads", abstract: "Every head at a glance: what it attends to and its top pairs.",
        discussion: """
        Attention shares are means over the held-out sequences' query positions p ≥ 1 of the model's own pattern: \
        first_position = P(p, 0), previous_token = P(p, p−1), same_token = P(p, p); entropy in nats (uniform: \
        uniform_entropy); mean_offset = Σ_s P(p, s)·(p − s); uniform_share = what uniform attention puts on one key. \
        role: the first position, previous or same token, whichever share is the largest multiple of uniform_share, \
        if at least 1.5×; else broad (entropy ≥ 3/4 of uniform's) or content. Runs whose step 2 did not measure these \
        are measured now with one forward pass (needs the run's model). RoPE runs add peak_offsets: the offsets the \
        head's pairs peak at, weighted by importance.
        """)

    @OptionGroup var location: StoreLocation
    @Option(name: .customLong("run"), help: "Run id (see `qkdb runs`; default: every trained run, by layer).") var runID: Int64?
    @Option(help: "Top pairs listed per head; 0 = none.") var top: Int = 3
    @Option(help: "table, csv or json.") var format: StoreOutputFormat = .table
    @OptionGroup var model: RunModelArgument

    func validate() throws {
        guard top >= 0 else { throw StoreError("--top must be 0 (none) or positive") }
    }

    func run() throws {
        let store = try Store(path: location.store)
        let runs: [RunInfo]
        if let runID { runs = [try store.run(runID)] } else {
            runs = try store.runs().filter { $0.spec.kind == .trained }.sorted { ($0.spec.layer ?? -1, $0.id) < ($1.spec.layer ?? -1, $1.id) }
            guard !runs.isEmpty else { throw StoreError("\(location.store) has no trained run") }
        }
        var summaries: [(RunInfo, [HeadSummary], FeatureLabels)] = []
        for info in runs {
            var attention: [HeadAttention]? = nil
            do {
                attention = try HeadAttention.of(info, store: store) {
                    try ExploredRun.open(store: store, run: info.id, modelPath: model.model, loadPairMap: false)
                }
            } catch let missing as RunModel.Missing {
                FileHandle.standardError.write(Data("note: run \(info.id): the attention columns need the run's model: \(missing.message)\n".utf8))
            }
            summaries.append((info, try HeadsOverview.summarize(store: store, run: info.id, attention: attention, topPairs: top), try store.labels(run: info.id)))
        }
        let rope = summaries.contains { $0.1.contains { !$0.peakOffsets.isEmpty } }
        // Across runs (no --run), each row starts with its run and layer.
        let lead = runID == nil ? ["run", "layer"] : []
        var t = ResultTable(headers: lead + ["head", "role", "first_position", "previous_token", "same_token", "uniform_share", "entropy", "uniform_entropy", "mean_offset", "pairs"]
                            + (rope ? ["peak_offsets"] : []) + ["rank", "query_feature", "key_feature", "importance", "value", "query_label", "key_label"])
        for (info, heads, labels) in summaries {
            for s in heads {
                let a = s.attention
                var cells: [ResultTable.Cell] = runID == nil ? [.int(Int(info.id)), .init(info.spec.layer)] : []
                cells += [.int(s.head), .init(a?.role), .init(a?.firstPosition), .init(a?.previousToken), .init(a?.sameToken),
                          .init(a?.uniformShare), .init(a?.entropy), .init(a?.uniformEntropy), .init(a?.meanOffset), .int(s.pairs)]
                if rope {
                    cells.append(.text(s.peakOffsets.prefix(3).map { "\($0.offset): \(Int((100 * $0.share).rounded()))%" }.joined(separator: ", ")))
                }
                if s.topPairs.isEmpty { t.rows.append(cells + [.null, .null, .null, .null, .null, .null, .null]) }
                for (n, p) in s.topPairs.enumerated() {
                    t.rows.append(cells + [.int(n + 1), .int(p.queryFeature), .int(p.keyFeature), .init(p.importance), .float(p.value),
                                           .init(labels[.query, p.queryFeature]), .init(labels[.key, p.keyFeature])])
                }
            }
        }
        let headColumns = Array(t.headers.prefix(lead.count + (rope ? 11 : 10)))
        printOut((format == .table ? t.blankingRepeats([(lead + ["head"], headColumns)]) : t).render(format))
    }
}
