import ArgumentParser
import Foundation
import QKStore
import QKTensor

/// `qkdb import-pairs` — makes any pair map computed elsewhere a run of kind `imported`.
/// The COO file holds integer tensors `head`, `query_feature`, `key_feature` and float `value`,
/// plus any of `mask`, `importance`, `mean_contribution`, `cooccurrence`; any other 1-D float
/// tensor of the same length becomes a named extra column. Everything is validated before the
/// store is touched, and the run and its map are written in one transaction.
struct ImportPairsCommand: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "import-pairs", abstract: "Import a pair map from a COO .safetensors file as a new run.")

    @OptionGroup var location: StoreLocation
    @Option(help: "Name of the new run.") var name: String
    @Option(help: "COO .safetensors file.") var coo: String
    @Option(name: .customLong("d-query"), help: "Query dictionary size (default: largest query feature + 1).") var dQuery: Int?
    @Option(name: .customLong("d-key"), help: "Key dictionary size (default: largest key feature + 1).") var dKey: Int?
    @Option(name: .customLong("n-head"), help: "Number of heads (default: largest head + 1).") var nHead: Int?
    @Option(help: "f32 (lossless, default), or the lossy fp16 / bf16 (the maximum error is stored and printed).") var values: ValueCodecArgument = .init(codec: .f32)
    @Option(name: .customLong("chunk-nnz"), help: "Pairs per query-major chunk.") var chunkNNZ: Int = PairMapOptions.defaultChunkNNZ
    @Option(name: .customLong("key-chunk-nnz"), help: "Pairs per key-major chunk.") var keyChunkNNZ: Int = PairMapOptions.defaultKeyChunkNNZ

    func validate() throws {
        for (flag, v) in [("--d-query", dQuery), ("--d-key", dKey), ("--n-head", nHead)] {
            if let v, v < (flag == "--n-head" ? 1 : 0) { throw StoreError("\(flag) must be \(flag == "--n-head" ? "positive" : "non-negative"), got \(v)") }
        }
        for (flag, v) in [("--chunk-nnz", chunkNNZ), ("--key-chunk-nnz", keyChunkNNZ)] where v < 1 || v > 1 << 20 {
            throw StoreError("\(flag) must be between 1 and 1048576, got \(v)")
        }
    }

    func run() throws {
        let pairs = try Self.readCOO(coo)
        func extent(_ given: Int?, _ indices: [Int32], _ what: String) throws -> Int {
            if let given { return given }
            guard let m = indices.max() else { throw StoreError("\(coo): the map is empty; give --\(what) to say its size") }
            return Int(m) + 1
        }
        let shape = PairMapShape(nHead: try extent(nHead, pairs.head, "n-head"), dQuery: try extent(dQuery, pairs.queryFeature, "d-query"),
                                 dKey: try extent(dKey, pairs.keyFeature, "d-key"))
        let prepared: PreparedPairMap
        do {
            prepared = try PreparedPairMap(coo: pairs, shape: shape, options: PairMapOptions(codec: values.codec, chunkNNZ: chunkNNZ, keyChunkNNZ: keyChunkNNZ))
        } catch let e as StoreError {
            throw StoreError("\(coo): \(e.message)")
        }
        let store = try Store(path: location.store, mode: .create)
        let spec = RunSpec(name: name, kind: .imported, model: nil, nHead: shape.nHead, dQuery: shape.dQuery, dKey: shape.dKey,
                           config: "{\"source\": \(ResultTable.jsonString(coo))}", status: "complete")
        let (id, info) = try store.importPrepared(spec, prepared)
        let error = info.codec == .f32 ? "lossless" : "\(info.codec.rawValue), max abs error \(info.maxAbsError.values.max() ?? 0)"
        printOut("run \(id): imported \(info.nnz) pairs [d_query \(shape.dQuery), d_key \(shape.dKey), n_head \(shape.nHead)] (\(error))\n")
    }

    /// Reads the COO tensors into plain arrays (QKStore knows no file formats but its own).
    static func readCOO(_ path: String) throws -> PairCOO {
        let file = try SafeTensorsFile(path: path)
        func indices(_ name: String) throws -> [Int32] {
            let e = try file.entry(name)
            guard e.shape.count == 1, [.i32, .i64].contains(e.dtype) else {
                throw TensorFileError(file: path, tensor: name, message: "must be a 1-D int32 or int64 tensor, found \(e.dtype.rawValue) \(e.shape)")
            }
            let values = try file.intArray(name).values
            return try values.enumerated().map { (i, v) in
                guard v >= 0 && v <= Int(Int32.max) else { throw TensorFileError(file: path, tensor: name, message: "entry \(i) is \(v) (indices must be non-negative)") }
                return Int32(v)
            }
        }
        func floats(_ name: String) throws -> [Float] {
            let e = try file.entry(name)
            guard e.shape.count == 1, e.dtype.isFloat else {
                throw TensorFileError(file: path, tensor: name, message: "must be a 1-D float tensor, found \(e.dtype.rawValue) \(e.shape)")
            }
            return try file.floatTensor(name).data
        }
        let head = try indices("head"), q = try indices("query_feature"), k = try indices("key_feature")
        guard q.count == head.count, k.count == head.count else {
            throw TensorFileError(file: path, message: "head, query_feature and key_feature differ in length (\(head.count), \(q.count), \(k.count))")
        }
        var columns: [PairColumn: [Float]] = [:]
        for c in PairColumn.allCases where file.contains(c.rawValue) { columns[c] = try floats(c.rawValue) }
        guard columns[.value] != nil else { throw TensorFileError(file: path, tensor: "value", message: "not found in file") }
        var extra: [(name: String, values: [Float])] = []
        let known = Set(["head", "query_feature", "key_feature"] + PairColumn.allCases.map(\.rawValue))
        for name in file.names where !known.contains(name) {
            let values = try floats(name)
            guard values.count == head.count else {
                throw TensorFileError(file: path, tensor: name, message: "has \(values.count) entries, the map has \(head.count)")
            }
            extra.append((name, values))
        }
        for (c, v) in columns where v.count != head.count {
            throw TensorFileError(file: path, tensor: c.rawValue, message: "has \(v.count) entries, the map has \(head.count)")
        }
        return PairCOO(head: head, queryFeature: q, keyFeature: k, columns: columns, extra: extra)
    }
}

struct ValueCodecArgument: ExpressibleByArgument {
    let codec: ValueCodec
    init(codec: ValueCodec) { self.codec = codec }
    init?(argument: String) {
        guard let c = ValueCodec(rawValue: argument) else { return nil }
        codec = c
    }
    static var allValueStrings: [String] { ValueCodec.allCases.map(\.rawValue) }
}
