import Foundation
import GRDB

/// Statistics of one dictionary feature.
public struct FeatureStats: Sendable, Equatable {
    public var side: FeatureSide
    public var index: Int
    public var alive: Bool
    public var density: Double?
    public var meanActivation: Double?
    public var maxActivation: Double?
    /// Fraction of the feature's activation mass that falls on BOS / [CLS] positions.
    public var bosFraction: Double?
    public var label: String?

    public init(side: FeatureSide, index: Int, alive: Bool, density: Double? = nil, meanActivation: Double? = nil,
                maxActivation: Double? = nil, bosFraction: Double? = nil, label: String? = nil) {
        self.side = side; self.index = index; self.alive = alive; self.density = density
        self.meanActivation = meanActivation; self.maxActivation = maxActivation; self.bosFraction = bosFraction; self.label = label
    }
}

/// One max-activating example: where in which stored sequence a feature fired, and how strongly.
public struct FeatureExample: Sendable, Equatable {
    public var side: FeatureSide
    public var feature: Int
    public var rank: Int
    public var sequenceID: Int
    public var position: Int
    public var activation: Float
    public init(side: FeatureSide, feature: Int, rank: Int, sequenceID: Int, position: Int, activation: Float) {
        self.side = side; self.feature = feature; self.rank = rank; self.sequenceID = sequenceID; self.position = position; self.activation = activation
    }
}

extension Store {
    private func checkIndex(_ side: FeatureSide, _ index: Int, _ info: RunInfo) throws {
        let extent = info.shape.extent(side)
        guard index >= 0, index < extent else {
            throw StoreError("\(side.rawValue) feature \(index) is out of range for run \(info.id) (d_\(side.rawValue) \(extent))")
        }
    }

    /// Stores (or replaces) feature statistics, one transaction.
    public func putFeatures(run: Int64, _ features: [FeatureStats]) throws {
        try write { db in
            let info = try requireRun(run, db)
            let insert = try db.makeStatement(sql: """
                INSERT OR REPLACE INTO features (run_id, side, idx, alive, density, mean_activation, max_activation, bos_fraction, label)
                VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)
                """)
            for f in features {
                try checkIndex(f.side, f.index, info)
                try insert.execute(arguments: [run, f.side.rawValue, f.index, f.alive ? 1 : 0, f.density, f.meanActivation, f.maxActivation, f.bosFraction, f.label])
            }
        }
    }

    /// One feature's statistics, or nil when the run stores none for it (the index must be in range).
    public func feature(run: Int64, side: FeatureSide, index: Int) throws -> FeatureStats? {
        try read { db in
            let info = try requireRun(run, db)
            try checkIndex(side, index, info)
            try checkStatisticsManifest(run: run, db)
            return try Row.fetchOne(db, sql: "SELECT * FROM features WHERE run_id = ? AND side = ? AND idx = ?", arguments: [run, side.rawValue, index]).map { try featureStats($0) }
        }
    }

    /// Every stored feature of a run (optionally one side), by side then index.
    public func features(run: Int64, side: FeatureSide? = nil) throws -> [FeatureStats] {
        try read { db in
            _ = try requireRun(run, db)
            try checkStatisticsManifest(run: run, db)
            return try Row.fetchAll(db, sql: "SELECT * FROM features WHERE run_id = ? AND (?2 IS NULL OR side = ?2) ORDER BY side DESC, idx",
                                    arguments: [run, side?.rawValue]).map { try featureStats($0) }
        }
    }

    func featureStats(_ row: Row) throws -> FeatureStats {
        let what = "\(path): a feature row"
        guard let side = FeatureSide(rawValue: try row.required("side", what)) else { throw StoreError("\(what): damaged side") }
        return FeatureStats(side: side, index: try row.required("idx", what), alive: (try row.required("alive", what) as Int) != 0,
                            density: try row.optional("density", what), meanActivation: try row.optional("mean_activation", what),
                            maxActivation: try row.optional("max_activation", what), bosFraction: try row.optional("bos_fraction", what),
                            label: try row.optional("label", what))
    }

    /// Stores (or replaces) max-activating examples, one transaction.
    public func putExamples(run: Int64, _ examples: [FeatureExample]) throws {
        try write { db in
            let info = try requireRun(run, db)
            let insert = try db.makeStatement(sql: """
                INSERT OR REPLACE INTO examples (run_id, side, feature, rank, sequence_id, position, activation) VALUES (?, ?, ?, ?, ?, ?, ?)
                """)
            for e in examples {
                try checkIndex(e.side, e.feature, info)
                try insert.execute(arguments: [run, e.side.rawValue, e.feature, e.rank, e.sequenceID, e.position, e.activation])
            }
        }
    }

    /// The max-activating examples of one feature, strongest first (the hook `qkdb feature` uses).
    public func examples(run: Int64, side: FeatureSide, feature: Int) throws -> [FeatureExample] {
        try read { db in
            let info = try requireRun(run, db)
            try checkIndex(side, feature, info)
            try checkStatisticsManifest(run: run, db)
            return try Row.fetchAll(db, sql: "SELECT * FROM examples WHERE run_id = ? AND side = ? AND feature = ? ORDER BY rank",
                                    arguments: [run, side.rawValue, feature]).map { try example($0) }
        }
    }

    /// Every max-activating example of a run, by side (query first), feature, then rank.
    public func examples(run: Int64) throws -> [FeatureExample] {
        try read { db in
            _ = try requireRun(run, db)
            try checkStatisticsManifest(run: run, db)
            return try Row.fetchAll(db, sql: "SELECT * FROM examples WHERE run_id = ? ORDER BY side DESC, feature, rank", arguments: [run]).map { try example($0) }
        }
    }

    /// The text of the token each example fires on (nil where the position lies outside its
    /// sequence), each stored sequence read once: the `token` column of both example exports.
    func firingTokens(run: Int64, of examples: [FeatureExample]) throws -> [String?] {
        let vocabulary = try self.vocabulary(run: run)
        var sequences: [Int: [Int32]] = [:]
        return try examples.map { e in
            if sequences[e.sequenceID] == nil { sequences[e.sequenceID] = try sequence(run: run, id: e.sequenceID) }
            let seq = sequences[e.sequenceID] ?? []
            return e.position >= 0 && e.position < seq.count ? vocabulary[Int(seq[e.position])] : nil
        }
    }

    func example(_ row: Row) throws -> FeatureExample {
        let what = "\(path): an example row"
        guard let side = FeatureSide(rawValue: try row.required("side", what)) else { throw StoreError("\(what): damaged side") }
        return FeatureExample(side: side, feature: try row.required("feature", what), rank: try row.required("rank", what),
                              sequenceID: try row.required("sequence_id", what), position: try row.required("position", what),
                              activation: Float(try row.required("activation", what) as Double))
    }

    /// Stores token sequences (zstd-compressed int32 ids), one transaction.
    public func putSequences(run: Int64, _ sequences: [(id: Int, tokens: [Int32])]) throws {
        try write { db in
            _ = try requireRun(run, db)
            let insert = try db.makeStatement(sql: "INSERT OR REPLACE INTO sequences (run_id, id, n_tokens, checksum, tokens) VALUES (?, ?, ?, ?, ?)")
            for s in sequences {
                let blob = zstd.compress(s.tokens.map { $0.littleEndian })
                try insert.execute(arguments: [run, s.id, s.tokens.count, Checksum.of(blob), Data(blob)])
            }
        }
    }

    public func sequence(run: Int64, id: Int) throws -> [Int32] {
        try read { db in
            _ = try requireRun(run, db)
            guard let row = try Row.fetchOne(db, sql: "SELECT n_tokens, checksum, tokens FROM sequences WHERE run_id = ? AND id = ?", arguments: [run, id]) else {
                throw StoreError("\(path): run \(run) has no sequence \(id)")
            }
            return try decodeSequence(row, run: run, id: id)
        }
    }

    func decodeSequence(_ row: Row, run: Int64, id: Int) throws -> [Int32] {
        let what = "\(path): sequence \(id) of run \(run)"
        let blob = [UInt8](try row.required("tokens", what) as Data)
        guard Checksum.of(blob) == (try row.required("checksum", what) as Int64) else { throw StoreError("\(what): checksum mismatch (corrupt)") }
        let n: Int = try row.required("n_tokens", what)
        return try zstd.decompress(blob, count: n, as: Int32.self, what: "\(path): sequence \(id) of run \(run)").map { Int32(littleEndian: $0) }
    }

    /// Stores (or replaces) the tokenizer vocabulary of a run, one transaction.
    public func putVocabulary(run: Int64, _ tokens: [(id: Int, text: String)]) throws {
        try write { db in
            _ = try requireRun(run, db)
            let insert = try db.makeStatement(sql: "INSERT OR REPLACE INTO vocabulary (run_id, id, token) VALUES (?, ?, ?)")
            for t in tokens { try insert.execute(arguments: [run, t.id, t.text]) }
        }
    }

    /// The vocabulary as a dictionary id → text.
    public func vocabulary(run: Int64) throws -> [Int: String] {
        try read { db in
            _ = try requireRun(run, db)
            try checkStatisticsManifest(run: run, db)
            var out: [Int: String] = [:]
            let cursor = try Row.fetchCursor(db, sql: "SELECT id, token FROM vocabulary WHERE run_id = ?", arguments: [run])
            while let row = try cursor.next() { out[try row.required(at: 0, "\(path): vocabulary of run \(run)")] = try row.required(at: 1, "\(path): vocabulary of run \(run)") }
            return out
        }
    }
}
