/// The parts of Parquet's metadata (parquet.thrift) this writer fills in, each with its Thrift
/// encoding. Field ids and enum values are the specification's; fields not listed are left out
/// (all optional there).
enum ParquetMetadata {
    /// `Type`: how a leaf's values are stored.
    enum PhysicalType: Int32 { case int32 = 1, int64 = 2, float = 4, double = 5, byteArray = 6 }
    /// `FieldRepetitionType`.
    enum Repetition: Int32 { case required = 0, optional = 1 }
    /// `Encoding`: PLAIN for values; RLE (the RLE/bit-packed hybrid) for definition levels.
    enum Encoding: Int32 { case plain = 0, rle = 3 }
    /// `CompressionCodec`.
    static let codecZstd: Int32 = 6
    /// `ConvertedType.UTF8`, the old readers' way of saying a byte array is text.
    static let convertedTypeUTF8: Int32 = 0
    /// `PageType.DATA_PAGE` (version 1).
    static let pageTypeDataPage: Int32 = 0

    struct Statistics {
        var min: [UInt8]?
        var max: [UInt8]?
        var nullCount: Int64
        /// Also written into the deprecated `min`/`max` fields, which old readers compare as
        /// signed values: right for numbers, wrong for strings (compared as unsigned bytes).
        var alsoDeprecatedMinMax: Bool

        func encode(_ w: inout ThriftCompactWriter) {
            if alsoDeprecatedMinMax, let max, let min {
                w.field(1, binary: max)
                w.field(2, binary: min)
            }
            w.field(3, i64: nullCount)
            if let max, let min {
                w.field(5, binary: max)
                w.field(6, binary: min)
            }
        }
    }

    struct SchemaElement {
        var name: String
        /// nil for the root group.
        var type: PhysicalType?
        var repetition: Repetition?
        /// The root's number of leaves.
        var numChildren: Int32?
        var isString = false

        func encode(_ w: inout ThriftCompactWriter) {
            if let type { w.field(1, i32: type.rawValue) }
            if let repetition { w.field(3, i32: repetition.rawValue) }
            w.field(4, string: name)
            if let numChildren { w.field(5, i32: numChildren) }
            if isString {
                w.field(6, i32: ParquetMetadata.convertedTypeUTF8)
                // LogicalType is a union; member 1 is STRING, an empty struct.
                w.field(10) { $0.field(1) { _ in } }
            }
        }
    }

    struct ColumnMetaData {
        var type: PhysicalType
        var encodings: [Encoding]
        var path: [String]
        var numValues: Int64
        var totalUncompressedSize: Int64
        var totalCompressedSize: Int64
        var dataPageOffset: Int64
        var statistics: Statistics

        func encode(_ w: inout ThriftCompactWriter) {
            w.field(1, i32: type.rawValue)
            w.field(2, i32List: encodings.map(\.rawValue))
            w.field(3, stringList: path)
            w.field(4, i32: ParquetMetadata.codecZstd)
            w.field(5, i64: numValues)
            w.field(6, i64: totalUncompressedSize)
            w.field(7, i64: totalCompressedSize)
            w.field(9, i64: dataPageOffset)
            w.field(12) { statistics.encode(&$0) }
        }
    }

    struct RowGroup {
        /// Each chunk's metadata. Its `ColumnChunk.file_offset` (deprecated, used inconsistently)
        /// is written as 0, as the spec asks when no ColumnMetaData lies outside the footer.
        var columns: [ColumnMetaData]
        var numRows: Int64

        func encode(_ w: inout ThriftCompactWriter) {
            w.field(1, structList: columns) { w, c in
                w.field(2, i64: 0)
                w.field(3) { c.encode(&$0) }
            }
            w.field(2, i64: columns.reduce(0) { $0 + $1.totalUncompressedSize })
            w.field(3, i64: numRows)
            if let first = columns.first { w.field(5, i64: first.dataPageOffset) }
            w.field(6, i64: columns.reduce(0) { $0 + $1.totalCompressedSize })
        }
    }

    struct FileMetaData {
        var schema: [SchemaElement]
        var numRows: Int64
        var rowGroups: [RowGroup]
        var keyValues: [(key: String, value: String)]
        var createdBy: String

        func encode() -> [UInt8] {
            var w = ThriftCompactWriter()
            w.field(1, i32: 1)
            w.field(2, structList: schema) { w, e in e.encode(&w) }
            w.field(3, i64: numRows)
            w.field(4, structList: rowGroups) { w, g in g.encode(&w) }
            if !keyValues.isEmpty {
                w.field(5, structList: keyValues) { w, kv in
                    w.field(1, string: kv.key)
                    w.field(2, string: kv.value)
                }
            }
            w.field(6, string: createdBy)
            // column_orders: TYPE_ORDER (union member 1, an empty struct) for every leaf. Readers
            // trust min_value/max_value only when the file declares how its columns sort.
            w.field(7, structList: Array(schema.dropFirst())) { w, _ in w.field(1) { _ in } }
            w.stop()
            return w.bytes
        }
    }

    /// A version-1 data page's header, which precedes its compressed bytes in the file.
    struct DataPageHeader {
        var uncompressedSize: Int32
        var compressedSize: Int32
        /// Values including nulls (the page's rows, for a flat column).
        var numValues: Int32

        func encode() -> [UInt8] {
            var w = ThriftCompactWriter()
            w.field(1, i32: ParquetMetadata.pageTypeDataPage)
            w.field(2, i32: uncompressedSize)
            w.field(3, i32: compressedSize)
            w.field(5) { w in
                w.field(1, i32: numValues)
                w.field(2, i32: Encoding.plain.rawValue)
                w.field(3, i32: Encoding.rle.rawValue)
                w.field(4, i32: Encoding.rle.rawValue)
            }
            w.stop()
            return w.bytes
        }
    }
}
