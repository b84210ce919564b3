import ArgumentParser
import Foundation
import QKStore
import QKAnalysis

/// `qkdb report` — a browsable static HTML report of a run (opens from the filesystem).
struct ReportCommand: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "report", abstract: "Write a browsable static HTML report of a run.")

    @OptionGroup var location: StoreLocation
    @Option(name: .customLong("run"), help: "Run id (see `qkdb runs`).") var runID: Int64
    @Option(help: "Output directory (replaced if it holds an earlier report; anything else only with --force).") var out: String
    @Flag(help: "Replace --out even when it is not an earlier report.") var force = false
    @OptionGroup var model: RunModelArgument
    @Option(help: "Held-out sequences shown as pattern heatmaps.") var prompts: Int = 3
    @Option(help: "Positions of each heatmap prompt shown.") var heatmapTokens: Int = 32

    func validate() throws {
        guard prompts >= 1, heatmapTokens >= 2 else { throw PipelineError("--prompts must be ≥ 1 and --heatmap-tokens ≥ 2") }
    }

    func run() throws {
        let store = try Store(path: location.store)
        var site = ReportSite()
        site.prompts = prompts; site.heatmapTokens = heatmapTokens
        let bar = FileHandle.standardError
        let started = Date()
        let s = try site.write(store: store, run: runID, to: out, force: force, modelPath: model.model) {
            bar.write(Data(String(format: "report: %6.1f s  %@…\n", Date().timeIntervalSince(started), $0).utf8))
        }
        print("wrote \(out)/index.html (\(s.featurePages) feature pages) in \(String(format: "%.1f", s.seconds)) s")
    }
}
