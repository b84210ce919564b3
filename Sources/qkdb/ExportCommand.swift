import ArgumentParser
import Foundation
import QKStore
import QKAnalysis

/// `qkdb export` — a run's pairs, features or examples as CSV, streamed chunk by chunk and
/// written atomically (no partial file on failure); or `--what dashboard`: per-feature JSON in
/// the SAEDashboard/Neuronpedia activation layout, into a new directory.
struct ExportCommand: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "export", abstract: "Export pairs, features or examples as CSV, or feature dashboards as JSON.")

    @OptionGroup var location: StoreLocation
    @Option(name: .customLong("run"), help: "Run id (see `qkdb runs`).") var runID: Int64
    @Option(help: "pairs, features, examples (CSV) or dashboard (a directory of per-feature JSON).") var what: ExportWhat
    @Option(help: "Output CSV file, or directory for dashboard.") var out: String

    func run() throws {
        let store = try Store(path: location.store)
        switch what {
        case .csv(let kind):
            let n = try store.exportCSV(run: runID, what: kind, to: out)
            printOut("wrote \(n) \(kind.rawValue) rows to \(out)\n")
        case .dashboard:
            let explored = try ExploredRun.open(store: store, run: runID)
            let n = try DashboardExport.write(store: store, explored: explored, to: out)
            printOut("wrote \(n) feature dashboards to \(out)\n")
        }
    }
}

enum ExportWhat: ExpressibleByArgument {
    case csv(ExportKind)
    case dashboard
    init?(argument: String) {
        if argument == "dashboard" { self = .dashboard; return }
        guard let k = ExportKind(rawValue: argument) else { return nil }
        self = .csv(k)
    }
    static var allValueStrings: [String] { ExportKind.allCases.map(\.rawValue) + ["dashboard"] }
}
