import Foundation
import QKTensor
import QKTrain
import QKStore

/// Exports a stored run's two dictionaries in SAELens' layout (see `SAELensExport`), with the
/// feature densities the store holds (held-out statistics from step 2, or step 1's firing counts).
/// `DIR` may hold other files; only `DIR/query` and `DIR/key` are replaced, and only when they
/// are earlier SAELens exports (or with `force`).
public enum DictionaryExport {
    /// The files SAELensExport writes into each side's folder.
    static let sideFiles: Set<String> = ["cfg.json", "sae_weights.safetensors", "sparsity.safetensors"]

    /// Refuses (one line) a `dir` that is not a directory, or a side folder holding anything but an
    /// earlier export; with `force`, clears what is in the way.
    static func checkDestination(_ dir: String, force: Bool) throws {
        let fm = FileManager.default
        var isDirectory: ObjCBool = false
        if fm.fileExists(atPath: dir, isDirectory: &isDirectory) && !isDirectory.boolValue {
            try OutputTarget(path: dir, shape: .directory, what: "SAELens export", force: force) { _ in false }.check()
            try? fm.removeItem(atPath: dir)   // only reached with --force
        }
        for side in ["query", "key"] {
            try OutputTarget(path: dir + "/" + side, shape: .directory, what: "SAELens export", force: force) { path in
                guard let names = try? fm.contentsOfDirectory(atPath: path) else { return false }
                return names.contains("cfg.json") && Set(names).isSubset(of: sideFiles)
            }.check()
        }
    }

    public static func write(run: Int64, store: Store, to dir: String, force: Bool = false) throws {
        try checkDestination(dir, force: force)
        let info = try store.run(run)
        guard info.spec.kind == .trained else {
            throw PipelineError("run \(run) in \(store.path) is \(info.spec.kind.rawValue): it has no dictionaries to export")
        }
        let o = try PipelineOptions.from(json: info.spec.config)
        let (query, key) = try MaskStage.loadTranscoders(run: run, options: o, store: store)
        func log10Density(_ side: FeatureSide, width: Int) throws -> [Float] {
            var out = [Float](repeating: -10, count: width)
            for f in try store.features(run: run, side: side) where f.index < width {
                if let d = f.density, d > 0 { out[f.index] = Float(log10(d)) }
            }
            return out
        }
        let metrics = (try? JSONSerialization.jsonObject(with: Data(info.spec.metrics.utf8))) as? [String: Any] ?? [:]
        let geometry = AttentionGeometry(nHead: info.spec.nHead, nKVHead: info.spec.nKVHead ?? info.spec.nHead,
                                         dHead: info.spec.dHead ?? query.dOut / info.spec.nHead,
                                         causal: info.spec.architecture != "bert",
                                         ropeTheta: try RoPEPairOffsets.theta(store: store, run: run))
        var export = DictionaryExportInfo(modelName: info.spec.model ?? o.model, layer: o.layer, geometry: geometry,
                                          contextSize: o.context, datasetPath: o.corpus ?? o.tokens ?? "", prependBOS: o.bos,
                                          lambdaQuery: Float(metrics["lambda_query"] as? Double ?? Double(o.training.objective.lambdaQ)),
                                          lambdaKey: Float(metrics["lambda_key"] as? Double ?? Double(o.training.objective.lambdaK)))
        export.decoderFit = o.training.decoderFitDescription(geometry: geometry)
        try SAELensExport.write(query: query, key: key,
                                log10DensityQuery: try log10Density(.query, width: query.dHidden),
                                log10DensityKey: try log10Density(.key, width: key.dHidden), info: export, to: dir)
    }
}
