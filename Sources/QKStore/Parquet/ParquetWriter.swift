import Foundation
import QKTensor

/// Writes a flat table as an Apache Parquet file that pyarrow, DuckDB, pandas and Spark read
/// directly: version-1 data pages, PLAIN values, zstd-compressed, with min/max/null-count
/// statistics on every column chunk.
///
///     let writer = try ParquetWriter(path: "pairs.parquet",
///                                    columns: [ParquetColumn("feature", .int32),
///                                              ParquetColumn("score", .float),
///                                              ParquetColumn("label", .string, nullable: true)])
///     try writer.append(rowGroup: [.int32(features), .float(scores), .nullableString(labels)])
///     try writer.finish(keyValueMetadata: [("qkdb.run", "3")])
///
/// Like the CSV writer it builds the file under a hidden temporary name beside `path`, renamed
/// into place only by `finish()`: an error, or a writer dropped unfinished, leaves no partial file.
/// An existing file is replaced only when it is an earlier qkdb Parquet file (or with `force`).
///
/// Each `append` is one row group (split when longer than `maxRowsPerRowGroup`); readers scan and
/// skip by row group, so hand it large batches — a million rows is a good size.
public final class ParquetWriter {
    public let path: String
    public let columns: [ParquetColumn]
    /// A longer `append` is written as several row groups of at most this many rows.
    public let maxRowsPerRowGroup: Int

    private let target: OutputTarget
    private let temporary: String
    private let handle: FileHandle
    private let encoders: [ColumnChunkEncoder]
    /// Bytes written so far: the next page's offset in the file.
    private var offset: Int64 = 0
    private var rowGroups: [ParquetMetadata.RowGroup] = []
    private var numRows: Int64 = 0
    private var finished = false

    static let magic = Array("PAR1".utf8)
    static let createdBy = "qkdb"

    /// `pageBytes`: the uncompressed size a data page is cut at. `compressionLevel`: zstd's level;
    /// 3 compresses several hundred MB/s per core, the speed of the rest of an export.
    public init(path: String, columns: [ParquetColumn], force: Bool = false, maxRowsPerRowGroup: Int = 1 << 20,
                pageBytes: Int = 1 << 20, compressionLevel: Int32 = 3) throws {
        precondition(maxRowsPerRowGroup > 0 && pageBytes > 0)
        if columns.isEmpty { throw StoreError("\(path): a Parquet file needs at least one column") }
        if Set(columns.map(\.name)).count != columns.count { throw StoreError("\(path): Parquet column names repeat") }
        self.path = path
        self.columns = columns
        self.maxRowsPerRowGroup = maxRowsPerRowGroup
        encoders = columns.map { _ in ColumnChunkEncoder(pageBytes: pageBytes, compressionLevel: compressionLevel) }
        target = OutputTarget(path: path, shape: .file, what: "Parquet file", force: force, recognises: { ParquetWriter.isOurs($0) })
        do { try target.check() } catch let e as OutputError { throw StoreError(e.message) }
        temporary = target.temporaryPath
        guard FileManager.default.createFile(atPath: temporary, contents: nil), let h = FileHandle(forWritingAtPath: temporary) else {
            throw StoreError("\(path): cannot create the output file")
        }
        handle = h
        try write(Self.magic)
    }

    deinit {
        if !finished {
            try? handle.close()
            try? FileManager.default.removeItem(atPath: temporary)
        }
    }

    /// Appends one row group: one `ParquetColumnData` per column, in the order of `columns`, each
    /// of the column's type (the `nullable…` case for a nullable column) and all the same length.
    /// An empty batch writes nothing.
    public func append(rowGroup data: [ParquetColumnData]) throws {
        precondition(!finished, "ParquetWriter.append after finish")
        guard data.count == columns.count else {
            throw StoreError("\(path): \(data.count) columns of data for \(columns.count) Parquet columns")
        }
        for (c, d) in zip(columns, data) where d.shape != (c.type, c.nullable) {
            throw StoreError("\(path): column \(c.name) is \(c.nullable ? "nullable " : "")\(c.type), given \(d.shape.nullable ? "nullable " : "")\(d.shape.type) data")
        }
        let rows = data[0].count
        if let bad = data.firstIndex(where: { $0.count != rows }) {
            throw StoreError("\(path): column \(columns[bad].name) has \(data[bad].count) rows, column \(columns[0].name) \(rows)")
        }
        for start in stride(from: 0, to: rows, by: maxRowsPerRowGroup) {
            try writeRowGroup(data, rows: start..<min(start + maxRowsPerRowGroup, rows))
        }
    }

    /// Writes the footer and moves the file into place. `keyValueMetadata` is stored in the
    /// footer as given (pyarrow shows it as `schema.metadata`), e.g. `[("qkdb.store", "s.qkdb")]`.
    public func finish(keyValueMetadata: [(key: String, value: String)] = []) throws {
        precondition(!finished, "ParquetWriter.finish twice")
        let schema = [ParquetMetadata.SchemaElement(name: "schema", numChildren: Int32(columns.count))]
            + columns.map(Self.schemaElement)
        let footer = ParquetMetadata.FileMetaData(schema: schema, numRows: numRows, rowGroups: rowGroups,
                                                  keyValues: keyValueMetadata, createdBy: Self.createdBy).encode()
        var tail = footer
        withUnsafeBytes(of: UInt32(footer.count).littleEndian) { tail.append(contentsOf: $0) }
        tail.append(contentsOf: Self.magic)
        try write(tail)
        do { try handle.close() } catch { throw StoreError("\(path): write failed (\(error.localizedDescription))") }
        do { try target.commit(from: temporary) } catch let e as OutputError { throw StoreError(e.message) }
        finished = true
    }

    // MARK: Writing

    private func writeRowGroup(_ data: [ParquetColumnData], rows: Range<Int>) throws {
        var chunks: [ParquetMetadata.ColumnMetaData] = []
        for (i, column) in columns.enumerated() {
            let encoder = encoders[i]
            encoder.encode(data[i], rows: rows)
            chunks.append(ParquetMetadata.ColumnMetaData(
                type: Self.physicalType(column.type), encodings: [.plain, .rle], path: [column.name],
                numValues: Int64(rows.count), totalUncompressedSize: Int64(encoder.uncompressedSize),
                totalCompressedSize: Int64(encoder.bytes.count), dataPageOffset: offset,
                statistics: encoder.statistics))
            try write(encoder.bytes)
        }
        rowGroups.append(ParquetMetadata.RowGroup(columns: chunks, numRows: Int64(rows.count)))
        numRows += Int64(rows.count)
    }

    private func write(_ bytes: [UInt8]) throws {
        do { try handle.write(contentsOf: bytes) } catch { throw StoreError("\(path): write failed (\(error.localizedDescription))") }
        offset += Int64(bytes.count)
    }

    private static func physicalType(_ type: ParquetColumn.ValueType) -> ParquetMetadata.PhysicalType {
        switch type {
        case .int32: .int32
        case .int64: .int64
        case .float: .float
        case .double: .double
        case .string: .byteArray
        }
    }

    private static func schemaElement(_ c: ParquetColumn) -> ParquetMetadata.SchemaElement {
        ParquetMetadata.SchemaElement(name: c.name, type: physicalType(c.type), repetition: c.nullable ? .optional : .required,
                                      isString: c.type == .string)
    }

    /// Whether the file at `path` is a Parquet file this writer made: "PAR1" at both ends and
    /// created_by "qkdb" in its footer — what `init` may replace without `force`.
    public static func isOurs(_ path: String) -> Bool {
        guard let h = FileHandle(forReadingAtPath: path) else { return false }
        defer { try? h.close() }
        guard let size = try? h.seekToEnd(), size >= 12,
              (try? h.seek(toOffset: 0)) != nil, (try? h.read(upToCount: 4)).map(Array.init) == magic,
              (try? h.seek(toOffset: size - 8)) != nil, let end = try? h.read(upToCount: 8), end.count == 8,
              Array(end.suffix(4)) == magic else { return false }
        let footerLength = UInt64(end.prefix(4).enumerated().reduce(UInt32(0)) { $0 | UInt32($1.element) << (8 * $1.offset) })
        guard footerLength + 12 <= size, (try? h.seek(toOffset: size - 8 - footerLength)) != nil,
              let footer = try? h.read(upToCount: Int(footerLength)) else { return false }
        // created_by is field 6, a string: its header byte, length 4, then the name.
        let createdBy = [UInt8(createdBy.utf8.count)] + Array(createdBy.utf8)
        return Array(footer).firstRange(of: createdBy) != nil
    }
}
