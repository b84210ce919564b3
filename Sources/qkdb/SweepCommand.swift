import ArgumentParser
import Foundation
import QKModels
import QKTrain
import QKAnalysis

/// `qkdb sweep`: traces step 1's sparsity frontier for a layer (short TopK runs over a grid of k)
/// and says which L0 the default rule would choose; `qkdb run`/`train` do the same by default.
struct SweepCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "sweep",
        abstract: "Step 1's sparsity frontier: short runs over a grid of k, and the L0 the default rule chooses.",
        discussion: "Each point trains both dictionaries with TopK k on the same cached activations for --sweep-tokens tokens and is judged on held-out sequences. `qkdb run` and `qkdb train` run the same sweep by default and record the frontier in the run (`qkdb runs`, the report).")

    @OptionGroup var pipeline: PipelineArguments

    @Option(help: "Layer whose attention is decomposed.")
    var layer: Int = 2

    @Option(help: "TopK values to try, comma-separated (default: doublings from 2, or 1 below 576 features, to a sixteenth of --d-hidden).")
    var grid: String?

    @Option(help: "Also write the frontier (points, baselines, rule, choice) to this JSON file; an existing file is not replaced.")
    var out: String?

    @Option(help: "Output format.")
    var format: StoreOutputFormat = .table

    func run() throws {
        if let out, FileManager.default.fileExists(atPath: out) {
            throw PipelineError("\(out) already exists; give --out a new file")
        }
        let model = try loadModel(path: pipeline.model)
        guard layer >= 0, layer < model.config.nLayer else {
            throw PipelineError("layer \(layer) is out of range: \(pipeline.model) has layers 0..<\(model.config.nLayer)")
        }
        var options = pipeline.options(layer: layer, model: model)
        options.sparsityChoice = .fromData
        var sweep = options.sweep ?? SparsitySweepOptions()
        if let grid {
            let ks = grid.split(separator: ",").map { Int($0.trimmingCharacters(in: .whitespaces)) }
            guard !ks.isEmpty, ks.allSatisfy({ ($0 ?? 0) > 0 }) else {
                throw PipelineError("--grid must be positive integers separated by commas, got '\(grid)'")
            }
            sweep.grid = ks.map { $0! }
        }
        options.sweep = sweep
        try options.validate()
        let plan = try CorpusPlan(options: options, model: model)
        let cancel = Interrupt.flag()
        let frontier = try SweepStage.run(options: options, model: model, plan: plan, observer: ProgressObserver(), cancel: cancel)
        print(SweepTable.table(frontier).render(format), terminator: "")
        if format == .table { print("chosen L0 \(String(format: "%.1f", frontier.chosenL0)): \(frontier.rule)") }
        if let out {
            let e = JSONEncoder(); e.outputFormatting = [.sortedKeys, .prettyPrinted]
            let tmp = out + ".partial"
            try e.encode(frontier).write(to: URL(fileURLWithPath: tmp))
            try FileManager.default.moveItem(atPath: tmp, toPath: out)
            FileHandle.standardError.write(Data("frontier written to \(out)\n".utf8))
        }
    }
}

/// The frontier as rows (one per k).
enum SweepTable {
    static func table(_ f: SparsityFrontier) -> ResultTable {
        var t = ResultTable(headers: ["k", "kl", "kl_q_only", "kl_k_only", "l0_query", "l0_key", "live_query", "live_key",
                                      "dead_query", "dead_key", "tokens", "seconds", "chosen"])
        for (i, p) in f.points.enumerated() {
            t.rows.append([.int(p.k), .double(rounded(p.klFull, 4)), .double(rounded(p.klQOnly, 4)), .double(rounded(p.klKOnly, 4)),
                           .double(rounded(p.l0Query, 1)), .double(rounded(p.l0Key, 1)), .int(p.liveQuery), .int(p.liveKey),
                           .double(rounded(p.deadFractionQuery, 3)), .double(rounded(p.deadFractionKey, 3)), .int(p.tokens),
                           .double(rounded(p.seconds, 1)),
                           .text(i == f.chosenPoint ? "L0 \(String(format: "%.1f", f.chosenL0))" : "")])
        }
        return t
    }

    static func rounded(_ x: Double, _ digits: Int) -> Double {
        let s = pow(10, Double(digits))
        return (x * s).rounded() / s
    }
}
