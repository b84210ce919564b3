import ArgumentParser
import Foundation
import QKStore
import QKAnalysis

/// `qkdb features` — search: which features fire on a token (`--token`, over every held-out
/// occurrence) or have max-activating examples containing a string (`--text`).
struct FeaturesCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "features", abstract: "Find features by what they fire on: a token, or text in their examples.",
        discussion: """
        --token T matches every vocabulary entry that reads as T (case-sensitive, ignoring a leading space, Ġ, ▁ or ##) \
        and ranks the features firing on its held-out occurrences by mean activation over all of them (recomputed with \
        one forward pass; needs the run's model). --text S lists features whose stored max-activating examples contain S \
        within --window tokens of the firing token, most matching examples first (no model needed).
        """)

    @OptionGroup var location: StoreLocation
    @Option(name: .customLong("run"), help: "Run id (see `qkdb runs`).") var runID: Int64
    @Option(help: "A token, as it reads (e.g. the).") var token: String?
    @Option(help: "Text to look for in the features' max-activating examples.") var text: String?
    @Option(help: "query or key (default: both).") var side: FeatureSideArgument?
    @Option(help: "Features listed; 0 = all.") var top: Int = 20
    @Option(help: "--text: tokens of context each side of the firing token.") var window: Int = 8
    @Option(help: "table, csv or json.") var format: StoreOutputFormat = .table
    @OptionGroup var model: RunModelArgument

    func validate() throws {
        guard (token == nil) != (text == nil) else { throw StoreError("give exactly one of --token and --text") }
        guard top >= 0 else { throw StoreError("--top must be 0 (all) or positive") }
        guard window >= 0 else { throw StoreError("--window must be 0 or positive") }
        if let s = token ?? text, s.trimmingCharacters(in: .whitespacesAndNewlines).isEmpty { throw StoreError("the search text is empty") }
    }

    func run() throws {
        let store = try Store(path: location.store)
        let info = try store.run(runID)
        guard info.spec.kind == .trained else { throw StoreError("run \(runID) is \(info.spec.kind.rawValue): it has no feature statistics to search") }
        let labels = try store.labels(run: runID)
        let sides = side.map { [$0.side] } ?? [.query, .key]
        func limited<T>(_ rows: [T]) -> [T] { top == 0 ? rows : Array(rows.prefix(top)) }
        var t: ResultTable
        if let token {
            let ids = FeatureSearch.tokenIDs(token, vocabulary: try store.vocabulary(run: runID))
            guard !ids.isEmpty else { throw StoreError("no token of run \(runID)'s vocabulary reads as \"\(token)\"") }
            let explored = try ExploredRun.open(store: store, run: runID, modelPath: model.model, loadPairMap: false)
            let hits = try FeatureSearch.byToken(ids, explored: explored, store: store, sides: sides)
            t = ResultTable(headers: ["side", "feature", "mean_activation", "firing", "occurrences", "share_of_feature", "label"])
            for side in sides {
                t.rows += limited(hits.filter { $0.side == side }).map { h in
                    [.text(side.rawValue), .int(h.hit.feature), .double(h.hit.meanActivation), .int(h.hit.firing), .int(h.hit.occurrences),
                     .double(h.hit.shareOfFeature), .init(labels[side, h.hit.feature])]
                }
            }
            if t.rows.isEmpty, format == .table {
                printOut("\"\(token)\" occurs in the held-out sequences, but no \(sides.map(\.rawValue).joined(separator: " or ")) feature fires on it\n")
                return
            }
        } else {
            let matches = try FeatureSearch.byText(text ?? "", store: store, run: runID, sides: sides, window: window, wordPiece: info.spec.architecture == "bert")
            t = ResultTable(headers: ["side", "feature", "matching_examples", "max_activation", "label", "example"])
            t.rows = limited(matches).map { m in
                [.text(m.side.rawValue), .int(m.feature), .int(m.examples), .float(m.maxActivation), .init(labels[m.side, m.feature]), .text(m.example)]
            }
        }
        printOut(t.render(format))
    }
}
