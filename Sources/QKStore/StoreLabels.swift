import Foundation
import GRDB

/// The labels of a run's features, both sides: step 2's automatic ones (what each feature
/// usually fires on) or, where a researcher set one with `qkdb label`, theirs.
///
///     let labels = try store.labels(run: 1)
///     labels[.query, 447]   // "“the” 41% · “a” 12%"
public struct FeatureLabels: Sendable {
    public var query: [Int: String] = [:]
    public var key: [Int: String] = [:]
    public init() {}

    public subscript(side: FeatureSide, index: Int) -> String? {
        get { side == .query ? query[index] : key[index] }
        set { if side == .query { query[index] = newValue } else { key[index] = newValue } }
    }
}

extension Store {
    /// Every label of a run (features without one are absent).
    public func labels(run: Int64) throws -> FeatureLabels {
        try read { db in
            _ = try requireRun(run, db)
            try checkStatisticsManifest(run: run, db)
            var out = FeatureLabels()
            let cursor = try Row.fetchCursor(db, sql: "SELECT side, idx, label FROM features WHERE run_id = ? AND label IS NOT NULL", arguments: [run])
            let what = "\(path): a feature label of run \(run)"
            while let row = try cursor.next() {
                guard let side = FeatureSide(rawValue: try row.required(at: 0, what)) else { throw StoreError("\(what): damaged side") }
                out[side, try row.required(at: 1, what)] = try row.required(at: 2, what) as String
            }
            return out
        }
    }

    /// Sets a researcher's label on one feature, replacing the automatic one everywhere it is shown.
    /// The feature must have statistics (step 2 writes them for every feature of a trained run).
    public func setLabel(run: Int64, side: FeatureSide, index: Int, text: String) throws {
        let label = text.trimmingCharacters(in: .whitespacesAndNewlines)
        guard !label.isEmpty else { throw StoreError("--text is empty: a label needs some text") }
        guard !label.contains(where: \.isNewline), label.count <= 200 else {
            throw StoreError("--text must be one line of at most 200 characters (got \(label.count))")
        }
        try write { db in
            let info = try requireRun(run, db)
            let extent = info.shape.extent(side)
            guard index >= 0, index < extent else {
                throw StoreError("\(side.rawValue) feature \(index) is out of range for run \(run) (d_\(side.rawValue) \(extent))")
            }
            try db.execute(sql: "UPDATE features SET label = ? WHERE run_id = ? AND side = ? AND idx = ?", arguments: [label, run, side.rawValue, index])
            guard db.changesCount == 1 else {
                throw StoreError("\(path): run \(run) stores no statistics for \(side.rawValue) feature \(index) (labels live with step 2's statistics)")
            }
        }
    }
}
