import Foundation
import QKStore

/// One row per trained run of a store, for a model decomposed layer by layer (`qkdb run --layer
/// all`, `qkdb runs --layers`): the dictionaries' L0 and live features, the pair map's size and
/// pruned KL, what patching the pruned map in recovers, and where the layer's attention goes
/// first (the mean over heads of the share on the first position).
public struct LayerOverview: Sendable {
    public var run: Int64
    public var name: String
    public var layer: Int?
    public var status: String
    public var l0Query: Double?, l0Key: Double?
    public var liveQuery: Int?, liveKey: Int?
    public var dQuery: Int, dKey: Int
    public var pairs: Int?
    public var klTranscoders: Double?, klPruned: Double?
    /// Loss (or embedding) recovered by the pruned map's pattern, from the evaluation `runs` shows.
    public var recoveredPrunedMap: Double?
    public var recoveredReconstruction: Double?
    /// Mean over heads of the held-out attention share on the first position.
    public var firstPositionShare: Double?

    /// Every trained run of `store`, by layer then run id.
    public static func all(in store: Store) throws -> [LayerOverview] {
        try store.runs().filter { $0.spec.kind == .trained }.map(LayerOverview.init).sorted {
            ($0.layer ?? -1, $0.run) < ($1.layer ?? -1, $1.run)
        }
    }

    public init(_ info: RunInfo) {
        run = info.id; name = info.spec.name; layer = info.spec.layer; status = info.spec.status
        dQuery = info.spec.dQuery; dKey = info.spec.dKey
        pairs = info.pairMap?.nnz
        let m = (try? JSONSerialization.jsonObject(with: Data(info.spec.metrics.utf8))) as? [String: Any] ?? [:]
        let s1 = m["step1"] as? [String: Any], s2 = m["step2"] as? [String: Any]
        func d(_ o: [String: Any]?, _ k: String) -> Double? { (o?[k] as? NSNumber)?.doubleValue }
        l0Query = d(s1, "l0Query"); l0Key = d(s1, "l0Key")
        liveQuery = (s1?["liveQuery"] as? NSNumber)?.intValue; liveKey = (s1?["liveKey"] as? NSNumber)?.intValue
        klTranscoders = d(s1, "klFull"); klPruned = d(s2, "klPruned")
        let results = (m["eval"] as? [String: Any])?["results"] as? [[String: Any]] ?? []
        recoveredPrunedMap = results.first { $0["name"] as? String == "pruned_map" }.flatMap { d($0, "recovered") }
        recoveredReconstruction = results.first { $0["name"] as? String == "reconstruction" }.flatMap { d($0, "recovered") }
        let heads = HeadAttention.stored(metrics: info.spec.metrics)
        firstPositionShare = heads.flatMap { $0.isEmpty ? nil : $0.map(\.firstPosition).reduce(0, +) / Double($0.count) }
    }
}
