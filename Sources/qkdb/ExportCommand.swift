import ArgumentParser
import Foundation
import QKStore

/// `qkdb export` — a run's pairs, features or examples as CSV, streamed chunk by chunk and
/// written atomically (no partial file on failure).
struct ExportCommand: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "export", abstract: "Export pairs, features or examples as CSV.")

    @OptionGroup var location: StoreLocation
    @Option(name: .customLong("run"), help: "Run id (see `qkdb runs`).") var runID: Int64
    @Option(help: "pairs, features or examples.") var what: ExportWhat
    @Option(help: "Output CSV file.") var out: String

    func run() throws {
        let store = try Store(path: location.store)
        let n = try store.exportCSV(run: runID, what: what.kind, to: out)
        printOut("wrote \(n) \(what.kind.rawValue) rows to \(out)\n")
    }
}

struct ExportWhat: ExpressibleByArgument {
    let kind: ExportKind
    init?(argument: String) {
        guard let k = ExportKind(rawValue: argument) else { return nil }
        kind = k
    }
    static var allValueStrings: [String] { ExportKind.allCases.map(\.rawValue) }
}
