import ArgumentParser
import Foundation
import QKStore

/// `qkdb label` — a researcher's own label for a feature, shown instead of the automatic one in
/// every command, CSV and the report.
struct LabelCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "label", abstract: "Set your own label on a feature (it replaces the automatic one everywhere).",
        discussion: "Automatic labels (set by step 2) list the tokens a feature fires on most, with their share of its firings, after \"position P:\" when 90% of its firings sit at one position.")

    @OptionGroup var location: StoreLocation
    @Option(name: .customLong("run"), help: "Run id (see `qkdb runs`).") var runID: Int64
    @Option(help: "query or key.") var side: FeatureSideArgument
    @Option(help: "Feature index.") var index: Int
    @Option(help: "The label (one line, at most 200 characters).") var text: String

    func run() throws {
        let store = try Store(path: location.store, mode: .readWrite)
        try store.setLabel(run: runID, side: side.side, index: index, text: text)
        printOut("labelled \(side.side.rawValue) feature \(index) of run \(runID): \(text.trimmingCharacters(in: .whitespacesAndNewlines))\n")
    }
}
