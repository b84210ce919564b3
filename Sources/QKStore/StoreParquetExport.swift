import Foundation
import QKTensor

/// `qkdb export --format parquet`: a store's pairs, features and examples as Hive-partitioned
/// Parquet for query engines (DuckDB, Spark, Polars, pyarrow), one file per run and table:
///
///     DIR/pairs/model=all-MiniLM-L6-v2/layer=2/run-1.parquet
///     DIR/features/model=…/layer=…/run-1.parquet
///     DIR/examples/model=…/layer=…/run-1.parquet
///
/// The columns are the CSV export's (docs/GUIDE.md, "CSV columns"), typed: ids int32 (`run`
/// int64), floats float32 as stored, statistics float64, texts UTF-8 strings, absent values null;
/// each file is zstd-compressed with min/max statistics per column chunk. A run without a layer
/// (an imported map) goes under `layer=__HIVE_DEFAULT_PARTITION__`, Hive's name for null.
///
///     duckdb.sql("SELECT layer, head, count(*) FROM read_parquet('DIR/pairs/**/*.parquet', hive_partitioning = true) GROUP BY ALL")
extension Store {
    public struct ParquetExportSummary: Sendable {
        public var runs = 0, pairs = 0, features = 0, examples = 0
        public var files = 0
    }

    /// Rows per row group of the pairs files (one group of a 10M-pair map per million pairs).
    static let parquetRowGroup = 1 << 20

    /// Writes `runs` (default: every run) under `directory`, built in a temporary directory and
    /// renamed into place; an existing directory is replaced only when it is an earlier Parquet
    /// export (or empty), else `force` is needed.
    @discardableResult
    public func exportParquet(to directory: String, runs selected: [Int64]? = nil, force: Bool = false) throws -> ParquetExportSummary {
        let all = try runs()
        let chosen = try selected.map { ids in try ids.map { id in try all.first { $0.id == id } ?? { throw StoreError("\(path): no run \(id)") }() } } ?? all
        let target = OutputTarget(path: directory, shape: .directory, what: "Parquet export", force: force) { dir in
            OutputTarget.isMarked(dir, what: "Parquet export")
        }
        do {
            return try target.writeDirectory { tmp in
                var summary = ParquetExportSummary()
                for info in chosen {
                    let partition = "model=\(Store.partitionValue(info.spec.model.map { URL(fileURLWithPath: $0).deletingPathExtension().lastPathComponent } ?? info.spec.name))/layer=\(info.spec.layer.map(String.init) ?? "__HIVE_DEFAULT_PARTITION__")"
                    func file(_ table: String) throws -> String {
                        let dir = tmp.appendingPathComponent(table).appendingPathComponent(partition)
                        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
                        summary.files += 1
                        return dir.appendingPathComponent("run-\(info.id).parquet").path
                    }
                    let labels = try self.labels(run: info.id)
                    let metadata = [("qkdb.run", String(info.id)), ("qkdb.name", info.spec.name)]
                    if info.pairMap != nil { summary.pairs += try parquetPairs(info, labels: labels, to: try file("pairs"), metadata: metadata) }
                    let features = try self.features(run: info.id)
                    if !features.isEmpty {
                        try parquetFeatures(info, features, to: try file("features"), metadata: metadata)
                        summary.features += features.count
                        summary.examples += try parquetExamples(info, labels: labels, to: try file("examples"), metadata: metadata)
                    }
                    summary.runs += 1
                }
                return summary
            }
        } catch let e as OutputError {
            throw StoreError(e.message)
        }
    }

    /// A Hive partition value: the characters a path or `=` would break, escaped as `%XX`.
    static func partitionValue(_ s: String) -> String {
        var out = ""
        for u in s.utf8 {
            let c = Character(UnicodeScalar(u))
            if c.isLetter || c.isNumber || "-_.".contains(c), u < 0x80 { out.append(c) } else { out += String(format: "%%%02X", u) }
        }
        return out.isEmpty ? "__HIVE_DEFAULT_PARTITION__" : out
    }

    func parquetPairs(_ info: RunInfo, labels: FeatureLabels, to file: String, metadata: [(String, String)]) throws -> Int {
        guard let map = info.pairMap else { return 0 }
        let columns = [ParquetColumn("run", .int64), ParquetColumn("head", .int32), ParquetColumn("query_feature", .int32),
                       ParquetColumn("key_feature", .int32), ParquetColumn("value", .float)]
            + [PairColumn.mask, .importance, .meanContribution, .cooccurrence].map { ParquetColumn($0.rawValue, .float, nullable: true) }
            + map.extraColumns.map { ParquetColumn($0, .float) }
            + [ParquetColumn("query_label", .string, nullable: true), ParquetColumn("key_label", .string, nullable: true)]
        let writer = try ParquetWriter(path: file, columns: columns, force: true)
        var head: [Int32] = [], query: [Int32] = [], key: [Int32] = [], value: [Float] = []
        var optional: [[Float?]] = Array(repeating: [], count: 4)
        var extra: [[Float]] = Array(repeating: [], count: map.extraColumns.count)
        var queryLabel: [String?] = [], keyLabel: [String?] = []
        var count = 0
        func flush() throws {
            guard !head.isEmpty else { return }
            try writer.append(rowGroup: [.int64([Int64](repeating: info.id, count: head.count)), .int32(head), .int32(query), .int32(key), .float(value)]
                              + optional.map { .nullableFloat($0) } + extra.map { .float($0) } + [.nullableString(queryLabel), .nullableString(keyLabel)])
            head.removeAll(keepingCapacity: true); query.removeAll(keepingCapacity: true); key.removeAll(keepingCapacity: true)
            value.removeAll(keepingCapacity: true); queryLabel.removeAll(keepingCapacity: true); keyLabel.removeAll(keepingCapacity: true)
            for i in optional.indices { optional[i].removeAll(keepingCapacity: true) }
            for i in extra.indices { extra[i].removeAll(keepingCapacity: true) }
        }
        try forEachPair(run: info.id) { p in
            head.append(Int32(p.head)); query.append(Int32(p.queryFeature)); key.append(Int32(p.keyFeature)); value.append(p.value)
            optional[0].append(p.mask); optional[1].append(p.importance); optional[2].append(p.meanContribution); optional[3].append(p.cooccurrence)
            for (i, x) in p.extra.enumerated() where i < extra.count { extra[i].append(x) }
            queryLabel.append(labels.query[p.queryFeature]); keyLabel.append(labels.key[p.keyFeature])
            count += 1
            if head.count == Store.parquetRowGroup { try flush() }
        }
        try flush()
        try writer.finish(keyValueMetadata: metadata)
        return count
    }

    func parquetFeatures(_ info: RunInfo, _ features: [FeatureStats], to file: String, metadata: [(String, String)]) throws {
        let writer = try ParquetWriter(path: file, columns: [
            ParquetColumn("run", .int64), ParquetColumn("side", .string), ParquetColumn("feature", .int32), ParquetColumn("alive", .int32),
            ParquetColumn("density", .double, nullable: true), ParquetColumn("mean_activation", .double, nullable: true),
            ParquetColumn("max_activation", .double, nullable: true), ParquetColumn("bos_fraction", .double, nullable: true),
            ParquetColumn("label", .string, nullable: true)], force: true)
        try writer.append(rowGroup: [.int64(features.map { _ in info.id }), .string(features.map(\.side.rawValue)), .int32(features.map { Int32($0.index) }),
                                     .int32(features.map { $0.alive ? 1 : 0 }), .nullableDouble(features.map(\.density)),
                                     .nullableDouble(features.map(\.meanActivation)), .nullableDouble(features.map(\.maxActivation)),
                                     .nullableDouble(features.map(\.bosFraction)), .nullableString(features.map(\.label))])
        try writer.finish(keyValueMetadata: metadata)
    }

    func parquetExamples(_ info: RunInfo, labels: FeatureLabels, to file: String, metadata: [(String, String)]) throws -> Int {
        let examples = try self.examples(run: info.id)
        let tokens = try firingTokens(run: info.id, of: examples)
        let writer = try ParquetWriter(path: file, columns: [
            ParquetColumn("run", .int64), ParquetColumn("side", .string), ParquetColumn("feature", .int32), ParquetColumn("rank", .int32),
            ParquetColumn("sequence_id", .int32), ParquetColumn("position", .int32), ParquetColumn("token", .string, nullable: true),
            ParquetColumn("activation", .float), ParquetColumn("label", .string, nullable: true)], force: true)
        try writer.append(rowGroup: [.int64(examples.map { _ in info.id }), .string(examples.map(\.side.rawValue)), .int32(examples.map { Int32($0.feature) }),
                                     .int32(examples.map { Int32($0.rank) }), .int32(examples.map { Int32($0.sequenceID) }),
                                     .int32(examples.map { Int32($0.position) }), .nullableString(tokens), .float(examples.map(\.activation)),
                                     .nullableString(examples.map { labels[$0.side, $0.feature] })])
        try writer.finish(keyValueMetadata: metadata)
        return examples.count
    }
}
