import Foundation
import QKStore

/// `qkdb merge`: runs from shard stores (one machine or job per layer, say) copied into one store
/// as stored. Each shard is verified first (every checksum; a damaged shard adds nothing); a run
/// already in the target (same name, creation time, config, metrics and status: a shard merged
/// twice) is skipped; clashing run ids are renumbered; a shard whose trained runs are of another
/// model (fingerprint) than the target's is refused unless `allowOtherModels`.
///
///     let added = try StoreMerge.merge(into: "model.qkdb", shards: ["shard-0.qkdb", "shard-1.qkdb"])
public enum StoreMerge {
    public struct Added: Sendable {
        public var shard: String
        /// Shard run id → its id in the target.
        public var runs: [(from: Int64, to: Int64)]
        /// Shard runs already in the target.
        public var skipped: [Int64]
    }

    public static func merge(into target: String, shards: [String], allowOtherModels: Bool = false) throws -> [Added] {
        guard !shards.isEmpty else { throw PipelineError("give at least one shard to merge") }
        let targetURL = URL(fileURLWithPath: target).standardizedFileURL.resolvingSymlinksInPath()
        for shard in shards where URL(fileURLWithPath: shard).standardizedFileURL.resolvingSymlinksInPath() == targetURL {
            throw PipelineError("\(shard) is the target store itself")
        }
        // Every shard is checked before the target is created or touched.
        var sources: [(path: String, store: Store)] = []
        for shard in shards {
            let s = try Store(path: shard)
            let report = try s.verify()
            guard report.isClean else { throw PipelineError("\(shard): verify failed: \(report.problems[0]); nothing merged") }
            sources.append((shard, s))
        }
        let into = try Store(path: target, mode: .create)
        var added: [Added] = []
        for (path, shard) in sources {
            let have = Set(try into.identities().values)
            var fingerprints = try modelFingerprints(into)
            let runs = try shard.runs()
            let identity = try shard.identities()
            let new = runs.filter { !have.contains(identity[$0.id]!) }
            if !allowOtherModels, let known = fingerprints.first {
                for r in new {
                    if let f = try fingerprint(r), f != known {
                        throw PipelineError("\(path): run \(r.id) is of another model (\(r.spec.model ?? "?"), fingerprint \(f.prefix(16))…) than \(target)'s (\(known.prefix(16))…); --allow-other-models merges it anyway")
                    }
                }
            }
            let mapping = try into.copyRuns(from: path, ids: new.map(\.id))
            for r in new { if let f = try fingerprint(r) { fingerprints.append(f) } }
            added.append(Added(shard: path, runs: new.map { ($0.id, mapping[$0.id]!) },
                               skipped: runs.filter { have.contains(identity[$0.id]!) }.map(\.id)))
        }
        return added
    }

    static func fingerprint(_ r: RunInfo) throws -> String? {
        guard r.spec.kind == .trained else { return nil }
        return (try? PipelineOptions.from(json: r.spec.config))?.modelFingerprint
    }

    static func modelFingerprints(_ s: Store) throws -> [String] {
        var seen: [String] = []
        for r in try s.runs() { if let f = try fingerprint(r), !seen.contains(f) { seen.append(f) } }
        return seen
    }
}
