import ArgumentParser
import Foundation
import QKStore
import QKAnalysis

/// Ranking columns as the command line names them.
enum PairOrder: String, ExpressibleByArgument, CaseIterable {
    case importance, value
    case meanContribution = "mean_contribution"
    var column: PairColumn { PairColumn(rawValue: rawValue) ?? .importance }
}

/// `qkdb pairs` — the pairs of one query or key feature, ranked, on one head or every head.
struct PairsCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "pairs", abstract: "The query × key feature pairs of one feature, or of one head, ranked.",
        discussion: "With --head and no feature, the head's own top pairs are listed (what it attends with). Given a feature without --head, every head is listed, each ranked on its own and grouped by head. --ascending lists the smallest first (e.g. --order value --ascending shows the most inhibitory pairs). On RoPE runs a pair's weight depends on the offset p − s: each pair shows its peak_offset and value there (peak_value), and --offset D ranks by the exact weight at offset D instead (|value| by default, signed with --order value).")

    @OptionGroup var location: StoreLocation
    @Option(name: .customLong("run"), help: "Run id (see `qkdb runs`).") var runID: Int64
    @Option(help: "One head (default: every head).") var head: Int?
    @Option(name: .customLong("query-feature"), help: "List the pairs of this query feature.") var queryFeature: Int?
    @Option(name: .customLong("key-feature"), help: "List the pairs of this key feature.") var keyFeature: Int?
    @Option(help: "Pairs per head; 0 = all.") var top: Int = 20
    @Option(help: "importance, value or mean_contribution (default: importance when the run has it, else value).") var order: PairOrder?
    @Flag(help: "Smallest first.") var ascending = false
    @Option(help: "RoPE runs: rank by each pair's weight at this query − key offset (recomputed from the stored decoders).") var offset: Int?
    @Flag(help: "List the feature pairs kept by several heads (distributed use), ranked by how many heads keep them, then their summed importance.") var shared = false
    @Option(help: "--shared: at least this many heads.") var minHeads: Int = 2
    @Option(help: "--shared: a head uses a pair when it carries at least this share of the pair's importance on its strongest head.") var minShare: Float = 0.1
    @Option(help: "table, csv or json.") var format: StoreOutputFormat = .table

    func run() throws {
        // Checked here rather than in validate(): a usage error there prints the whole usage text.
        guard queryFeature == nil || keyFeature == nil else { throw StoreError("give at most one of --query-feature and --key-feature") }
        if shared {
            guard queryFeature == nil, keyFeature == nil, head == nil, offset == nil else {
                throw StoreError("--shared lists pairs across every head: give it without --query-feature, --key-feature, --head or --offset")
            }
            return try printShared()
        }
        guard queryFeature != nil || keyFeature != nil || head != nil else {
            throw StoreError("give --query-feature, --key-feature or --head (a head's own top pairs)")
        }
        guard top >= 0 else { throw StoreError("--top must be 0 (all) or positive, got \(top)") }
        let store = try Store(path: location.store)
        let info = try store.run(runID)
        let labels = try store.labels(run: runID)
        let side: FeatureSide = queryFeature != nil ? .query : .key
        let column = order?.column ?? ((info.pairMap?.columns.contains(.importance) ?? true) ? .importance : .value)
        let feature = queryFeature ?? keyFeature
        let extra = info.pairMap?.extraColumns ?? []
        if let h = head, feature == nil {
            guard offset == nil else { throw StoreError("--offset ranks one feature's pairs: give --query-feature or --key-feature with it") }
            let rows = try store.headPairs(run: runID, head: h, top: top, order: column, ascending: ascending)
            printOut(Self.integerOffsets(pairTable(rows, extraColumns: extra, labels: labels)).render(format))
            return
        }
        guard let feature else { return }
        if let d = offset {
            guard d >= 0 else { throw StoreError("--offset must be ≥ 0 (query position minus key position), got \(d)") }
            guard try RoPEPairOffsets.isRoPE(store: store, run: runID) else {
                throw StoreError("run \(runID) in \(location.store) is not a RoPE run: its pair weights do not depend on the offset")
            }
            guard order == nil || order == .value || order == .importance else {
                throw StoreError("--offset ranks by the weight at that offset: use --order value (signed) or leave --order out (|weight|)")
            }
            let offsets = try RoPEPairOffsets(store: store, run: runID)
            let all = try store.pairs(run: runID, PairQuery(side: side, feature: feature, head: head, top: 0, order: .value, ascending: false))
            let ranked = try offsets.ranked(all, offset: d, top: top, signed: order == .value, ascending: ascending)
            var table = pairTable(ranked.map(\.row), extraColumns: extra, labels: labels)
            // Beside the pair's own columns, before the labels.
            let at = table.headers.count - 2
            table.headers.insert("value_at_offset", at: at)
            for n in table.rows.indices { table.rows[n].insert(.float(ranked[n].value), at: at) }
            printOut(Self.integerOffsets(table).render(format))
            return
        }
        let rows = try store.pairs(run: runID, PairQuery(side: side, feature: feature, head: head, top: top,
                                                       order: column, ascending: ascending))
        printOut(Self.integerOffsets(pairTable(rows, extraColumns: extra, labels: labels)).render(format))
    }

    /// `--shared`: pairs kept on several heads, with the heads and their summed importance.
    func printShared() throws {
        guard top >= 0 else { throw StoreError("--top must be 0 (all) or positive, got \(top)") }
        let store = try Store(path: location.store)
        let all = try store.sharedPairs(run: runID, minHeads: minHeads, minShare: minShare)
        let labels = try store.labels(run: runID)
        var t = ResultTable(headers: ["query_feature", "key_feature", "n_heads", "heads", "total_importance", "importance_per_head", "query_label", "key_label"])
        t.rows = (top == 0 ? all : Array(all.prefix(top))).map { p in
            [.int(p.queryFeature), .int(p.keyFeature), .int(p.heads.count), .text(p.heads.map(String.init).joined(separator: " ")),
             .double(p.totalImportance), .text(p.importance.map { NumberText.short(Double($0)) }.joined(separator: " ")),
             .init(labels[.query, p.queryFeature]), .init(labels[.key, p.keyFeature])]
        }
        printOut(t.render(format))
    }

    /// `peak_offset` is stored as a float column; it is a position difference, so print it as one.
    static func integerOffsets(_ t: ResultTable) -> ResultTable {
        guard let c = t.headers.firstIndex(of: "peak_offset") else { return t }
        var out = t
        for r in out.rows.indices {
            if case .float(let v) = out.rows[r][c], v.isFinite, abs(v) < 1e9 { out.rows[r][c] = .int(Int(v)) }
        }
        return out
    }
}
