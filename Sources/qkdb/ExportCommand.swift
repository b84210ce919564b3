import ArgumentParser
import Foundation
import QKStore
import QKAnalysis

/// `qkdb export` — a run's pairs, features or examples as CSV, streamed chunk by chunk and
/// written atomically (no partial file on failure), or to standard output with `--out -`; or `--what dashboard`: per-feature JSON in
/// the SAEDashboard/Neuronpedia activation layout, into a new directory.
struct ExportCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "export", abstract: "Export pairs, features or examples as CSV or Parquet, or feature dashboards as JSON.",
        discussion: """
        --format parquet writes pairs, features and examples of every run (or of --run) into DIR as Hive-partitioned \
        Parquet: DIR/pairs/model=NAME/layer=L/run-ID.parquet and the same under features/ and examples/, zstd-compressed \
        with column statistics, for DuckDB, Spark, Polars or pyarrow.
        """)

    @OptionGroup var location: StoreLocation
    @Option(name: .customLong("run"), help: "Run id (see `qkdb runs`); --format parquet: default every run.") var runID: Int64?
    @Option(help: "pairs, features, examples (CSV) or dashboard (a directory of per-feature JSON); not with --format parquet, which writes all three.") var what: ExportWhat?
    @Option(help: "csv or parquet.") var format: ExportFormat = .csv
    @Option(help: "Output CSV file (`-`: standard output), or directory for dashboard and Parquet.") var out: String
    @OptionGroup var model: RunModelArgument
    @Flag(help: "Replace --out even when it is not an earlier export of the same kind (a directory, a store, another file).") var force = false

    func run() throws {
        let store = try Store(path: location.store)
        if format == .parquet {
            guard what == nil else { throw StoreError("--format parquet writes pairs, features and examples together: leave out --what") }
            guard out != "-" else { throw StoreError("--out -: Parquet is written to a directory") }
            let s = try store.exportParquet(to: out, runs: runID.map { [$0] }, force: force)
            return printOut("wrote \(s.runs) runs (\(s.pairs) pairs, \(s.features) features, \(s.examples) examples) as \(s.files) Parquet files under \(out)\n")
        }
        guard let runID else { throw StoreError("give --run (CSV and dashboard exports are of one run)") }
        guard let what else { throw StoreError("give --what: pairs, features, examples or dashboard") }
        switch what {
        case .csv(let kind):
            let n = try store.exportCSV(run: runID, what: kind, to: out, force: force)
            if out != "-" { printOut("wrote \(n) \(kind.rawValue) rows to \(out)\n") }
        case .dashboard:
            guard out != "-" else { throw StoreError("--out -: only CSV exports stream to standard output; give a directory for the dashboard") }
            let explored = try ExploredRun.open(store: store, run: runID, modelPath: model.model)
            let n = try DashboardExport.write(store: store, explored: explored, to: out, force: force)
            printOut("wrote \(n) feature dashboards to \(out)\n")
        }
    }
}

enum ExportFormat: String, ExpressibleByArgument, CaseIterable { case csv, parquet }

enum ExportWhat: ExpressibleByArgument, Equatable {
    case csv(ExportKind)
    case dashboard
    init?(argument: String) {
        if argument == "dashboard" { self = .dashboard; return }
        guard let k = ExportKind(rawValue: argument) else { return nil }
        self = .csv(k)
    }
    static var allValueStrings: [String] { ExportKind.allCases.map(\.rawValue) + ["dashboard"] }
}
