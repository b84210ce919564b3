import ArgumentParser
import Foundation
import QKStore

/// Ranking columns as the command line names them.
enum PairOrder: String, ExpressibleByArgument, CaseIterable {
    case importance, value
    case meanContribution = "mean_contribution"
    var column: PairColumn { PairColumn(rawValue: rawValue) ?? .importance }
}

/// `qkdb pairs` — the pairs of one query or key feature, ranked, on one head or every head.
struct PairsCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "pairs", abstract: "The query × key feature pairs of one feature, ranked.",
        discussion: "Without --head, every head is listed, each ranked on its own and grouped by head. --ascending lists the smallest first (e.g. --order value --ascending shows the most inhibitory pairs).")

    @OptionGroup var location: StoreLocation
    @Option(name: .customLong("run"), help: "Run id (see `qkdb runs`).") var runID: Int64
    @Option(help: "One head (default: every head).") var head: Int?
    @Option(name: .customLong("query-feature"), help: "List the pairs of this query feature.") var queryFeature: Int?
    @Option(name: .customLong("key-feature"), help: "List the pairs of this key feature.") var keyFeature: Int?
    @Option(help: "Pairs per head; 0 = all.") var top: Int = 20
    @Option(help: "importance, value or mean_contribution (default: importance when the run has it, else value).") var order: PairOrder?
    @Flag(help: "Smallest first.") var ascending = false
    @Option(help: "table, csv or json.") var format: StoreOutputFormat = .table

    func run() throws {
        // Checked here rather than in validate(): a usage error there prints the whole usage text.
        guard (queryFeature == nil) != (keyFeature == nil) else { throw StoreError("give exactly one of --query-feature and --key-feature") }
        guard top >= 0 else { throw StoreError("--top must be 0 (all) or positive, got \(top)") }
        let store = try Store(path: location.store)
        let info = try store.run(runID)
        let side: FeatureSide = queryFeature != nil ? .query : .key
        let column = order?.column ?? ((info.pairMap?.columns.contains(.importance) ?? true) ? .importance : .value)
        let rows = try store.pairs(run: runID, PairQuery(side: side, feature: queryFeature ?? keyFeature ?? 0, head: head, top: top,
                                                       order: column, ascending: ascending))
        printOut(pairTable(rows, extraColumns: info.pairMap?.extraColumns ?? []).render(format))
    }
}
