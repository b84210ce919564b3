import ArgumentParser
import Foundation
import QKStore
import QKAnalysis

/// `qkdb feature` — one feature's statistics, its max-activating examples as text (firing token
/// marked «so»), a histogram of its activations over the held-out sample (recomputed with one
/// forward pass over the stored held-out sequences) and its strongest partners on each head.
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
    @Option(help: "Tokens of context each side of an example's firing token.") var window: Int = 8
    @Flag(help: "Skip the activation histogram (it reloads the model to recompute the held-out codes).") var noHistogram = false
    @Flag(help: "Instead: the features of the adjacent layers' runs in this store that match this one best (encoder and decoder cosine).") var acrossLayers = false
    @OptionGroup var model: RunModelArgument

    func validate() throws {
        guard top >= 0 else { throw StoreError("--top must be 0 (all) or positive") }
        guard window >= 0 else { throw StoreError("--window must be 0 or positive") }
    }

    func run() throws {
        let store = try Store(path: location.store)
        let info = try store.run(runID)
        let s = side.side
        if acrossLayers {
            let labels = try store.runs().filter { $0.spec.kind == .trained }.reduce(into: [Int64: FeatureLabels]()) { $0[$1.id] = try store.labels(run: $1.id) }
            var t = ResultTable(headers: ["run", "layer", "side", "feature", "encoder_cosine", "decoder_cosine", "label"])
            t.rows = try FeatureAcrossLayers.matches(store: store, run: runID, side: s, index: index, top: top == 0 ? .max : top).map { m in
                [.int(Int(m.run)), .int(m.layer), .text(s.rawValue), .int(m.feature), .float(m.encoderCosine),
                 m.decoderCosine.isNaN ? .null : .float(m.decoderCosine), .init(labels[m.run]?[s, m.feature])]
            }
            if t.rows.isEmpty, format == .table {
                return printOut("no run of layer \((info.spec.layer ?? 0) - 1) or \((info.spec.layer ?? 0) + 1) of the same model in \(location.store)\n")
            }
            return printOut(t.render(format))
        }
        let stats = try store.feature(run: runID, side: s, index: index)
        var statTable = ResultTable(headers: ["side", "feature", "alive", "density", "mean_activation", "max_activation", "bos_fraction", "label"])
        statTable.rows = [[.text(s.rawValue), .int(index), stats.map { .int($0.alive ? 1 : 0) } ?? .null, .init(stats?.density),
                           .init(stats?.meanActivation), .init(stats?.maxActivation), .init(stats?.bosFraction), .init(stats?.label)]]
        let labels = try store.labels(run: runID)
        var pairs = pairTable([], extraColumns: info.pairMap?.extraColumns ?? [], labels: labels)
        if let map = info.pairMap {
            let column = order?.column ?? (map.columns.contains(.importance) ? .importance : .value)
            pairs = pairTable(try store.pairs(run: runID, PairQuery(side: s, feature: index, top: top, order: column)), extraColumns: map.extraColumns, labels: labels)
        }
        // Examples and the histogram need the run's sequences (and model): trained runs only.
        let extras = info.spec.kind == .trained && format != .csv ? try loadExtras(store: store, info: info, side: s) : nil
        switch format {
        case .table:
            var text = statTable.render(.table) + (stats == nil ? "(no statistics stored for this feature)\n" : "") + "\n"
            if let extras {
                text += examplesAndHistogram(extras.view, extras.histogram, wordPiece: info.spec.architecture == "bert")
                if let note = extras.histogramNote { text += "activation histogram: needs the run's model — \(note)\n\n" }
            }
            text += "strongest partners on each head (by \((order?.column ?? (info.pairMap?.columns.contains(.importance) == true ? .importance : .value)).rawValue)):\n"
            printOut(text + (info.pairMap == nil ? "(run \(runID) has no pair map yet)\n" : pairs.render(.table)))
        case .csv:
            printOut(pairs.render(.csv))
        case .json:
            var examples = "[]", histogram = "null", note = "null"
            if let extras {
                examples = "[" + extras.view.examples.map { e in
                    "{\"sequence_id\": \(e.sequenceID), \"position\": \(e.position), \"activation\": \(ResultTable.Cell.float(e.activation).jsonText), " +
                    "\"tokens\": [\(e.tokens.map(ResultTable.jsonString).joined(separator: ", "))], \"firing_index\": \(e.firing)}"
                }.joined(separator: ", ") + "]"
                if let n = extras.histogramNote { note = ResultTable.jsonString(n) }
                if let h = extras.histogram {
                    histogram = "{\"max_value\": \(ResultTable.Cell.float(h.maxValue).jsonText), \"positions\": \(h.positions), \"counts\": [\(h.counts.map(String.init).joined(separator: ", "))]}"
                }
            }
            printOut("{\"feature\": \(statTable.jsonObject(statTable.rows[0])), \"has_statistics\": \(stats != nil), \"examples\": \(examples), \"histogram\": \(histogram), \"histogram_note\": \(note), \"pairs\": \(pairs.jsonArray())}\n")
        }
    }
}

extension FeatureCommand {
    /// The feature's examples (with context) and, unless `--no-histogram`, its activation histogram
    /// over the stored held-out sequences (one forward pass of the run's model). When the model is
    /// nowhere to be found (and no `--model` was given), everything else is still shown and the
    /// note says what the histogram needs.
    func loadExtras(store: Store, info: RunInfo, side s: FeatureSide) throws -> (view: FeatureView, histogram: ActivationHistogram?, histogramNote: String?) {
        var cache: [Int: [Int32]] = [:]
        let view = try FeatureView.load(store: store, run: runID, side: s, index: index, vocabulary: try store.vocabulary(run: runID),
                                        window: window, top: 0, nHead: info.spec.nHead, hasPairMap: false, sequenceCache: &cache)
        guard !noHistogram else { return (view, nil, nil) }
        let explored: ExploredRun
        do {
            explored = try ExploredRun.open(store: store, run: runID, modelPath: model.model, loadPairMap: false)
        } catch let missing as RunModel.Missing {
            return (view, nil, missing.message)
        }
        let codes = try explored.codes(of: try explored.heldOutSequences(store: store))
        let h = ActivationHistogram.perFeature(codes: s == .query ? codes.query : codes.key, width: s == .query ? info.spec.dQuery : info.spec.dKey)[index]
        return (view, h, nil)
    }

    /// The examples block and the histogram block of the table view.
    func examplesAndHistogram(_ view: FeatureView, _ h: ActivationHistogram?, wordPiece: Bool) -> String {
        var text = "max-activating examples (held-out sequence:position, activation):\n"
        text += view.examples.isEmpty ? "(none stored)\n" : view.examples.map {
            String(format: "%5d:%-4d ", $0.sequenceID, $0.position) + NumberText.short(Double($0.activation)).leftPadded(8) + "  " + TokenText.marked($0, wordPiece: wordPiece)
        }.joined(separator: "\n") + "\n"
        text += "\n"
        if let h {
            text += "activation histogram over \(h.positions) held-out positions (fires on \(h.firing), density \(String(format: "%.4f", h.density))):\n"
            text += h.textChart() + "\n"
        }
        return text
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
