import QKTensor
import Foundation
import QKStore

/// Per-feature JSON in the layout SAEDashboard's Neuronpedia export uses for a feature's
/// activations (`activations[]` of `{tokens, values, bin_min, bin_max, bin_contains,
/// qualifying_token_index}`, `frac_nonzero`, `freq_hist_data_bar_heights/values`), so viewers built
/// for SAE features can show qkdb's query and key features. Logit fields stay empty: a QK
/// feature writes to q or k, not to the residual stream, so it has no logit effect.
public enum DashboardExport {
    public struct Options: Sendable {
        public var window = 16
        public init() {}
    }

    /// Writes `<out>/<side>/<index>.json` for every feature with statistics, plus `<out>/index.json`;
    /// atomically (a temporary directory renamed into place), replacing only an earlier dashboard export
    /// unless `force`. Returns the number of features written.
    public static func write(store: Store, explored: ExploredRun, to out: String, force: Bool = false, options: Options = Options()) throws -> Int {
        let target = OutputTarget(path: out, shape: .directory, what: "dashboard export", force: force) {
            OutputTarget.isMarked($0, what: "dashboard export")
        }
        return try target.writeDirectory { tmp in
            try writeAll(store: store, explored: explored, dir: tmp, options: options)
        }
    }

    static func writeAll(store: Store, explored: ExploredRun, dir: URL, options: Options) throws -> Int {
        let run = explored.run, info = explored.info
        let vocab = try store.vocabulary(run: run)
        let sequences = try explored.heldOutSequences(store: store)
        let codes = try explored.codes(of: sequences)
        let nTokens = sequences.first?.count ?? 0
        var written = 0
        var index: [String] = []
        for side in [FeatureSide.query, .key] {
            let sideDir = dir.appendingPathComponent(side.rawValue)
            try FileManager.default.createDirectory(at: sideDir, withIntermediateDirectories: true)
            let width = side == .query ? info.spec.dQuery : info.spec.dKey
            let sideCodes = side == .query ? codes.query : codes.key
            let hist = ActivationHistogram.perFeature(codes: sideCodes, width: width, bins: 40)
            var cache: [Int: [Int32]] = [:]
            for stats in try store.features(run: run, side: side) {
                let f = stats.index
                let view = try FeatureView.load(store: store, run: run, side: side, index: f, vocabulary: vocab, window: options.window,
                                                top: 0, nHead: info.spec.nHead, hasPairMap: false, sequenceCache: &cache)
                let h = hist[f]
                var acts: [String] = []
                for e in view.examples where e.sequenceID < sideCodes.count {
                    let lo = e.position - e.firing
                    let values = (0..<e.tokens.count).map { ReportSite.activation(sideCodes[e.sequenceID], row: lo + $0, feature: f) }
                    acts.append("{\"tokens\": [\(e.tokens.map(jsonString).joined(separator: ", "))], \"values\": \(floats(values)), " +
                                "\"bin_min\": -1, \"bin_max\": -1, \"bin_contains\": -1, \"qualifying_token_index\": \(e.firing), " +
                                "\"max_value\": \(num(e.activation)), \"sequence_id\": \(e.sequenceID), \"position\": \(e.position)}")
                }
                let centres = (0..<h.bins).map { h.centre($0) }
                let json = "{\"feature_index\": \(f), \"side\": \"\(side.rawValue)\", \"run\": \(run), \"layer\": \(info.spec.layer ?? -1), " +
                    "\"model\": \(jsonString(info.spec.model ?? "")), \"alive\": \(stats.alive), " +
                    "\"frac_nonzero\": \(num(Float(stats.density ?? h.density))), " +
                    "\"freq_hist_data_bar_heights\": [\(h.counts.map(String.init).joined(separator: ", "))], " +
                    "\"freq_hist_data_bar_values\": \(floats(centres)), " +
                    "\"logits_hist_data_bar_heights\": [], \"logits_hist_data_bar_values\": [], " +
                    "\"neg_str\": [], \"neg_values\": [], \"pos_str\": [], \"pos_values\": [], " +
                    "\"n_prompts_total\": \(sequences.count), \"n_tokens_in_prompt\": \(nTokens), " +
                    "\"activations\": [\(acts.joined(separator: ", "))]}\n"
                try Data(json.utf8).write(to: sideDir.appendingPathComponent("\(f).json"))
                index.append("{\"side\": \"\(side.rawValue)\", \"feature_index\": \(f), \"path\": \"\(side.rawValue)/\(f).json\"}")
                written += 1
            }
        }
        try Data(("{\"run\": \(run), \"features\": [\n" + index.joined(separator: ",\n") + "]}\n").utf8).write(to: dir.appendingPathComponent("index.json"))
        return written
    }

    static func num(_ v: Float) -> String { v.isFinite ? "\(v)" : "null" }
    static func floats(_ v: [Float]) -> String { "[" + v.map(num).joined(separator: ", ") + "]" }
    static func jsonString(_ s: String) -> String { QKTensor.jsonString(s) }
}
