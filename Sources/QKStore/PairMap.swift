/// The per-pair float columns a pair map may carry, with their stable snake_case names
/// (the CSV header and the SQL column names). `value` is required; the others are optional.
public enum PairColumn: String, CaseIterable, Sendable {
    case value, mask, importance
    case meanContribution = "mean_contribution"
    case cooccurrence

    /// The columns a query can rank by.
    public static let orderable: [PairColumn] = [.importance, .value, .meanContribution]
}

/// Which feature a pair-map ordering leads with. `query` is ordering 0 (head, query, key);
/// `key` is ordering 1 (head, key, query).
public enum FeatureSide: String, Sendable, CaseIterable {
    case query, key
    var ordering: Int { self == .query ? 0 : 1 }
    public var other: FeatureSide { self == .query ? .key : .query }
}

/// A pair map in coordinate form, in any order: entry `n` is the pair
/// (query feature `queryFeature[n]`, key feature `keyFeature[n]`) on head `head[n]`.
public struct PairCOO: Sendable {
    public var head: [Int32]
    public var queryFeature: [Int32]
    public var keyFeature: [Int32]
    /// Float columns by name; `.value` must be present, the others may be.
    public var columns: [PairColumn: [Float]]
    /// Additional named per-pair float columns (e.g. a RoPE peak offset), in a fixed order.
    public var extra: [(name: String, values: [Float])]

    public init(head: [Int32], queryFeature: [Int32], keyFeature: [Int32], columns: [PairColumn: [Float]], extra: [(name: String, values: [Float])] = []) {
        self.head = head
        self.queryFeature = queryFeature
        self.keyFeature = keyFeature
        self.columns = columns
        self.extra = extra
    }

    public var count: Int { head.count }
}

/// The extent of a pair map: [d_query, d_key, n_head].
public struct PairMapShape: Sendable, Equatable {
    public var nHead: Int
    public var dQuery: Int
    public var dKey: Int
    public init(nHead: Int, dQuery: Int, dKey: Int) {
        self.nHead = nHead; self.dQuery = dQuery; self.dKey = dKey
    }
    func extent(_ side: FeatureSide) -> Int { side == .query ? dQuery : dKey }
}

/// How a pair map is written.
public struct PairMapOptions: Sendable {
    /// Lossless `f32` by default; `fp16`/`bf16` trade exactness for size, with the error recorded.
    public var codec: ValueCodec
    /// Target pairs per query-major chunk. Small (256) because a key-feature query fetches each
    /// pair it returns from this ordering: one ~6 KB chunk per pair (README, store benchmark).
    public var chunkNNZ: Int
    /// Target pairs per key-major chunk, which holds only indices and the ranking column, so a
    /// long key row (an attention sink) ranks from one or two chunks.
    public var keyChunkNNZ: Int
    public init(codec: ValueCodec = .f32, chunkNNZ: Int = PairMapOptions.defaultChunkNNZ, keyChunkNNZ: Int = PairMapOptions.defaultKeyChunkNNZ) {
        self.codec = codec; self.chunkNNZ = chunkNNZ; self.keyChunkNNZ = keyChunkNNZ
    }
    public static let defaultChunkNNZ = 256
    public static let defaultKeyChunkNNZ = 2048
}

/// One stored pair, as queries return it. Optional columns are nil when the run lacks them.
public struct PairRow: Sendable, Equatable {
    public var head: Int
    public var queryFeature: Int
    public var keyFeature: Int
    public var value: Float
    public var mask: Float?
    public var importance: Float?
    public var meanContribution: Float?
    public var cooccurrence: Float?
    public var extra: [Float]

    public init(head: Int, queryFeature: Int, keyFeature: Int, value: Float, mask: Float? = nil, importance: Float? = nil, meanContribution: Float? = nil, cooccurrence: Float? = nil, extra: [Float] = []) {
        self.head = head; self.queryFeature = queryFeature; self.keyFeature = keyFeature
        self.value = value; self.mask = mask; self.importance = importance
        self.meanContribution = meanContribution; self.cooccurrence = cooccurrence; self.extra = extra
    }

    public func column(_ c: PairColumn) -> Float? {
        switch c {
        case .value: return value
        case .mask: return mask
        case .importance: return importance
        case .meanContribution: return meanContribution
        case .cooccurrence: return cooccurrence
        }
    }
}

/// What the catalog says about a run's pair map.
public struct PairMapInfo: Sendable {
    public var nnz: Int
    public var codec: ValueCodec
    /// Per column, the largest absolute error the codec introduced (0 for lossless).
    public var maxAbsError: [String: Double]
    public var columns: [PairColumn]
    /// The columns the key-major ordering repeats (what key-feature queries rank by without fetching).
    public var keyColumns: [PairColumn]
    public var extraColumns: [String]
    public var chunkNNZ: Int
    public var keyChunkNNZ: Int

    /// Names and order of the float columns in a chunk of one ordering: the query-major ordering
    /// holds every column then the extra ones; the key-major ordering only `keyColumns`.
    func storedColumns(_ side: FeatureSide) -> [String] {
        side == .query ? columns.map(\.rawValue) + extraColumns : keyColumns.map(\.rawValue)
    }

    /// How an ordering's floats are encoded: the run's codec in query-major chunks; in key-major
    /// chunks always bf16, which is only a ranking key (exact values come from query-major).
    func codec(_ side: FeatureSide) -> ValueCodec { side == .query ? codec : .bf16 }

    /// The key-major ordering repeats importance (the default ranking), or value when the run has no importance.
    static func keyColumns(for columns: [PairColumn]) -> [PairColumn] {
        columns.contains(.importance) ? [.importance] : [.value]
    }
}
