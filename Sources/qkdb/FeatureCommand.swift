import ArgumentParser
import Foundation
import QKStore

/// `qkdb feature` — one feature's statistics and its top pairs on each head.
/// (Its max-activating examples come from `Store.examples`, shown by a later issue.)
struct FeatureCommand: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "feature", abstract: "Statistics, examples and partners of one feature.",
                                                    discussion: "csv prints the pairs only; table and json also show the statistics.")

    @OptionGroup var location: StoreLocation
    @Option(name: .customLong("run"), help: "Run id (see `qkdb runs`).") var runID: Int64
    @Option(help: "query or key.") var side: FeatureSideArgument
    @Option(help: "Feature index.") var index: Int
    @Option(help: "Pairs per head; 0 = all.") var top: Int = 10
    @Option(help: "importance, value or mean_contribution (default: importance when the run has it, else value).") var order: PairOrder?
    @Option(help: "table, csv or json.") var format: StoreOutputFormat = .table

    func validate() throws {
        guard top >= 0 else { throw StoreError("--top must be 0 (all) or positive") }
    }

    func run() throws {
        let store = try Store(path: location.store)
        let info = try store.run(runID)
        let s = side.side
        let stats = try store.feature(run: runID, side: s, index: index)
        var statTable = ResultTable(headers: ["side", "index", "alive", "density", "mean_activation", "max_activation", "bos_fraction", "label"])
        statTable.rows = [[.text(s.rawValue), .int(index), stats.map { .int($0.alive ? 1 : 0) } ?? .null, .init(stats?.density),
                           .init(stats?.meanActivation), .init(stats?.maxActivation), .init(stats?.bosFraction), .init(stats?.label)]]
        var pairs = pairTable([], extraColumns: info.pairMap?.extraColumns ?? [])
        if let map = info.pairMap {
            let column = order?.column ?? (map.columns.contains(.importance) ? .importance : .value)
            pairs = pairTable(try store.pairs(run: runID, PairQuery(side: s, feature: index, top: top, order: column)), extraColumns: map.extraColumns)
        }
        switch format {
        case .table:
            printOut(statTable.render(.table) + (stats == nil ? "(no statistics stored for this feature)\n" : "") + "\n" +
                     (info.pairMap == nil ? "(run \(runID) has no pair map yet)\n" : pairs.render(.table)))
        case .csv:
            printOut(pairs.render(.csv))
        case .json:
            printOut("{\"feature\": \(statTable.jsonObject(statTable.rows[0])), \"has_statistics\": \(stats != nil), \"pairs\": \(pairs.jsonArray())}\n")
        }
    }
}

/// `--side query|key`.
struct FeatureSideArgument: ExpressibleByArgument {
    let side: FeatureSide
    init?(argument: String) {
        guard let s = FeatureSide(rawValue: argument) else { return nil }
        side = s
    }
    static var allValueStrings: [String] { FeatureSide.allCases.map(\.rawValue) }
}
