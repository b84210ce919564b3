import Foundation
import GRDB
import QKTensor

/// What a run is: the model layer it decomposes and the shape of its dictionaries.
public struct RunSpec: Sendable {
    public enum Kind: String, Sendable { case trained, imported }
    public var name: String
    public var kind: Kind
    public var model: String?
    public var architecture: String?
    public var layer: Int?
    public var nHead: Int
    public var nKVHead: Int?
    public var dHead: Int?
    public var dModel: Int?
    public var dQuery: Int
    public var dKey: Int
    /// JSON objects (text). `config` is fixed at creation; `metrics` can be merged into later.
    public var config: String
    public var metrics: String
    public var status: String

    public init(name: String, kind: Kind, model: String? = nil, architecture: String? = nil, layer: Int? = nil,
                nHead: Int, nKVHead: Int? = nil, dHead: Int? = nil, dModel: Int? = nil, dQuery: Int, dKey: Int,
                config: String = "{}", metrics: String = "{}", status: String = "created") {
        self.name = name; self.kind = kind; self.model = model; self.architecture = architecture; self.layer = layer
        self.nHead = nHead; self.nKVHead = nKVHead; self.dHead = dHead; self.dModel = dModel
        self.dQuery = dQuery; self.dKey = dKey; self.config = config; self.metrics = metrics; self.status = status
    }
}

/// A run as the catalog lists it.
public struct RunInfo: Sendable {
    public var id: Int64
    public var spec: RunSpec
    public var createdAt: String
    public var updatedAt: String
    /// Present once the run's pair map has been written.
    public var pairMap: PairMapInfo?
    public var shape: PairMapShape { PairMapShape(nHead: spec.nHead, dQuery: spec.dQuery, dKey: spec.dKey) }
}

extension Store {
    static func checkJSONObject(_ text: String, what: String) throws {
        guard let data = text.data(using: .utf8), (try? JSONSerialization.jsonObject(with: data)) is [String: Any] else {
            throw StoreError("\(what) must be a JSON object, got: \(JSONNumber.quoted(text))")
        }
    }

    /// Creates a run and returns its id (one transaction).
    public func createRun(_ spec: RunSpec) throws -> Int64 {
        try write { db in try insertRun(spec, db) }
    }

    func insertRun(_ spec: RunSpec, _ db: Database) throws -> Int64 {
        try Store.checkJSONObject(spec.config, what: "run config")
        try Store.checkJSONObject(spec.metrics, what: "run metrics")
        guard spec.nHead > 0, spec.dQuery >= 0, spec.dKey >= 0 else {
            throw StoreError("run '\(spec.name)': n_head must be positive and dictionary sizes non-negative")
        }
        let now = Store.now()
        try db.execute(sql: """
            INSERT INTO runs (name, kind, model, architecture, layer, n_head, n_kv_head, d_head, d_model, d_query, d_key,
                              config, metrics, status, created_at, updated_at)
            VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
            """, arguments: [spec.name, spec.kind.rawValue, spec.model, spec.architecture, spec.layer, spec.nHead, spec.nKVHead,
                             spec.dHead, spec.dModel, spec.dQuery, spec.dKey, spec.config, spec.metrics, spec.status, now, now])
        return db.lastInsertedRowID
    }

    /// Merges `metrics` (a JSON object) into the run's metrics; keys given replace old ones.
    public func mergeMetrics(run: Int64, _ metrics: String) throws {
        try Store.checkJSONObject(metrics, what: "run metrics")
        try write { db in
            _ = try requireRun(run, db)
            try db.execute(sql: "UPDATE runs SET metrics = json_patch(metrics, ?), updated_at = ? WHERE id = ?", arguments: [metrics, Store.now(), run])
        }
    }

    public func setStatus(run: Int64, _ status: String) throws {
        try write { db in
            _ = try requireRun(run, db)
            try db.execute(sql: "UPDATE runs SET status = ?, updated_at = ? WHERE id = ?", arguments: [status, Store.now(), run])
        }
    }

    /// Every run, oldest first.
    public func runs() throws -> [RunInfo] {
        try read { db in
            let runs = try Row.fetchAll(db, sql: "SELECT * FROM runs ORDER BY id").map { row in
                let info = try runInfo(row, db)
                try checkCatalogManifest(run: info.id, db)
                return info
            }
            try checkManifestCoverage(runs: runs.map(\.id), db)
            return runs
        }
    }

    public func run(_ id: Int64) throws -> RunInfo {
        try read { db in try requireRun(id, db) }
    }

    func requireRun(_ id: Int64, _ db: Database) throws -> RunInfo {
        guard let row = try Row.fetchOne(db, sql: "SELECT * FROM runs WHERE id = ?", arguments: [id]) else {
            throw StoreError("\(path): no run \(id) (see `qkdb runs`)")
        }
        if runCache[id] == nil { try checkCatalogManifest(run: id, db) }   // once per run and process
        return try runInfo(row, db)
    }

    private func runInfo(_ row: Row, _ db: Database) throws -> RunInfo {
        let id: Int64 = try row.required("id", "\(path): a run row")
        let what = "\(path): run \(id)"
        guard let kind = RunSpec.Kind(rawValue: try row.required("kind", what)) else { throw StoreError("\(what) has an unknown kind") }
        let spec = RunSpec(name: try row.required("name", what), kind: kind, model: try row.optional("model", what),
                           architecture: try row.optional("architecture", what), layer: try row.optional("layer", what),
                           nHead: try row.required("n_head", what), nKVHead: try row.optional("n_kv_head", what), dHead: try row.optional("d_head", what),
                           dModel: try row.optional("d_model", what), dQuery: try row.required("d_query", what), dKey: try row.required("d_key", what),
                           config: try row.required("config", what), metrics: try row.required("metrics", what), status: try row.required("status", what))
        guard spec.nHead > 0, spec.nHead < (1 << 21), spec.dQuery >= 0, spec.dQuery < (1 << 21), spec.dKey >= 0, spec.dKey < (1 << 21) else {
            throw StoreError("\(what) has a damaged shape")
        }
        return RunInfo(id: id, spec: spec, createdAt: try row.required("created_at", what), updatedAt: try row.required("updated_at", what),
                       pairMap: try pairMapInfo(run: id, db))
    }

    func pairMapInfo(run: Int64, _ db: Database) throws -> PairMapInfo? {
        guard let row = try Row.fetchOne(db, sql: "SELECT * FROM pair_maps WHERE run_id = ?", arguments: [run]) else { return nil }
        let damaged = StoreError("\(path): the pair map catalog of run \(run) is damaged")
        guard let codec = ValueCodec(rawValue: (try? row.required("value_codec", path) as String) ?? ""),
              let errors = try? JSONSerialization.jsonObject(with: Data(((try? row.required("max_abs_error", path) as String) ?? "").utf8)) as? [String: Double],
              let columnNames = try? JSONSerialization.jsonObject(with: Data(((try? row.required("columns", path) as String) ?? "").utf8)) as? [String],
              let keyColumnNames = try? JSONSerialization.jsonObject(with: Data(((try? row.required("key_columns", path) as String) ?? "").utf8)) as? [String],
              let extra = try? JSONSerialization.jsonObject(with: Data(((try? row.required("extra_columns", path) as String) ?? "").utf8)) as? [String]
        else { throw damaged }
        func parse(_ names: [String]) throws -> [PairColumn] {
            try names.map { name -> PairColumn in
                guard let c = PairColumn(rawValue: name) else { throw damaged }
                return c
            }
        }
        let columns = try parse(columnNames), keyColumns = try parse(keyColumnNames)
        guard columns.contains(.value), Set(keyColumns).isSubset(of: columns) else { throw damaged }
        let what = "\(path): the pair map catalog of run \(run)"
        return PairMapInfo(nnz: try row.required("nnz", what), codec: codec, maxAbsError: errors, columns: columns, keyColumns: keyColumns,
                           extraColumns: extra, chunkNNZ: try row.required("chunk_nnz", what), keyChunkNNZ: try row.required("key_chunk_nnz", what))
    }

    /// Shape and pair-map facts of a run, from the cache after the first call.
    func cachedRun(_ id: Int64, _ db: Database) throws -> CachedRun {
        if let c = runCache[id] { return c }
        let info = try requireRun(id, db)
        let c = CachedRun(shape: info.shape, pairMap: info.pairMap)
        runCache[id] = c
        return c
    }
}
