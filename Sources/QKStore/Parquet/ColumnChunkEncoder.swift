import Foundation

/// Encodes one column chunk: its rows cut into version-1 data pages of about `pageBytes`
/// uncompressed, each page written as its Thrift header then its zstd-compressed body
/// (definition levels for an optional column, then the non-null values PLAIN), and the chunk's
/// statistics gathered on the way. One per column, reused for every row group: its buffers keep
/// their capacity, so a file of many row groups allocates only at the start.
final class ColumnChunkEncoder {
    /// The chunk just encoded: page headers and compressed pages, in file order.
    private(set) var bytes: [UInt8] = []
    private(set) var uncompressedSize = 0
    private(set) var statistics = ParquetMetadata.Statistics(min: nil, max: nil, nullCount: 0, alsoDeprecatedMinMax: false)

    private let zstd: Zstd
    private let pageBytes: Int
    /// A page's uncompressed body (levels then values), for an optional or string column.
    private var page: [UInt8] = []
    /// The string values of the page being built, kept apart until its levels are known.
    private var pageValues: [UInt8] = []
    private var levels: DefinitionLevels

    init(pageBytes: Int, compressionLevel: Int32) {
        self.pageBytes = pageBytes
        zstd = Zstd(level: compressionLevel)
        levels = DefinitionLevels(capacity: pageBytes)
    }

    /// Encodes `rows` of `data` as the chunk (replacing the previous one).
    func encode(_ data: ParquetColumnData, rows: Range<Int>) {
        bytes.removeAll(keepingCapacity: true)
        uncompressedSize = 0
        switch data {
        case .int32(let v): encodeRequired(v, rows)
        case .int64(let v): encodeRequired(v, rows)
        case .float(let v): encodeRequired(v, rows)
        case .double(let v): encodeRequired(v, rows)
        case .nullableInt32(let v): encodeOptional(v, rows)
        case .nullableInt64(let v): encodeOptional(v, rows)
        case .nullableFloat(let v): encodeOptional(v, rows)
        case .nullableDouble(let v): encodeOptional(v, rows)
        case .string(let v): encodeStrings(rows, optional: false) { v[$0] }
        case .nullableString(let v): encodeStrings(rows, optional: true) { v[$0] }
        }
    }

    // MARK: Fixed-width values

    /// A required column's page body is its values exactly as they lie in the array: compressed
    /// straight from it, no copy.
    private func encodeRequired<T: ParquetPlainValue>(_ values: [T], _ rows: Range<Int>) {
        var bounds = PlainBounds<T>()
        let perPage = max(1, pageBytes / MemoryLayout<T>.stride)
        values.withUnsafeBufferPointer { all in
            for start in stride(from: rows.lowerBound, to: rows.upperBound, by: perPage) {
                let slice = UnsafeBufferPointer(rebasing: all[start..<min(start + perPage, rows.upperBound)])
                bounds.add(slice)
                writePage(UnsafeRawBufferPointer(slice), rows: slice.count)
            }
        }
        setStatistics(bounds.encoded, nullCount: 0, numeric: true)
    }

    private func encodeOptional<T: ParquetPlainValue>(_ values: [T?], _ rows: Range<Int>) {
        var bounds = PlainBounds<T>()
        var nulls = 0
        let perPage = max(1, pageBytes / MemoryLayout<T>.stride)
        var present: [T] = []
        present.reserveCapacity(min(perPage, rows.count))
        for start in stride(from: rows.lowerBound, to: rows.upperBound, by: perPage) {
            let end = min(start + perPage, rows.upperBound)
            levels.reset()
            present.removeAll(keepingCapacity: true)
            // Index loops rather than `for i in range`: at -Onone (tests) a Range's iterator costs
            // generic metadata lookups on every step.
            var i = start
            while i < end {
                if let v = values[i] {
                    present.append(v)
                    levels.add(present: true)
                } else {
                    levels.add(present: false)
                }
                i += 1
            }
            nulls += levels.nullCount
            page.removeAll(keepingCapacity: true)
            levels.encode(into: &page)
            present.withUnsafeBufferPointer { p in
                bounds.add(p)
                page.append(contentsOf: UnsafeRawBufferPointer(p))
            }
            page.withUnsafeBytes { writePage($0, rows: end - start) }
        }
        setStatistics(bounds.encoded, nullCount: nulls, numeric: true)
    }

    // MARK: Strings

    /// Strings are BYTE_ARRAY PLAIN: each a 4-byte little-endian length then its UTF-8 bytes,
    /// copied from the string's own storage. Pages are cut by size, since lengths vary.
    private func encodeStrings(_ rows: Range<Int>, optional: Bool, _ value: (Int) -> String?) {
        var bounds = StringBounds()
        var nulls = 0
        var start = rows.lowerBound
        levels.reset()
        pageValues.removeAll(keepingCapacity: true)
        var i = rows.lowerBound
        while i < rows.upperBound {
            if var s = value(i) {
                s.withUTF8 { utf8 in
                    var length = UInt32(utf8.count).littleEndian
                    withUnsafeBytes(of: &length) { pageValues.append(contentsOf: $0) }
                    pageValues.append(contentsOf: utf8)
                    bounds.add(utf8)
                }
                if optional { levels.add(present: true) }
            } else {
                levels.add(present: false)
            }
            if pageValues.count >= pageBytes || i == rows.upperBound - 1 {
                nulls += levels.nullCount
                page.removeAll(keepingCapacity: true)
                if optional { levels.encode(into: &page) }
                page.append(contentsOf: pageValues)
                page.withUnsafeBytes { writePage($0, rows: i + 1 - start) }
                start = i + 1
                levels.reset()
                pageValues.removeAll(keepingCapacity: true)
            }
            i += 1
        }
        // Deprecated min/max compared strings as signed bytes; old readers would misuse ours.
        setStatistics(bounds.encoded, nullCount: nulls, numeric: false)
    }

    // MARK: Pages and statistics

    private func writePage(_ body: UnsafeRawBufferPointer, rows: Int) {
        let compressed = zstd.compressFrame(body)
        let header = ParquetMetadata.DataPageHeader(uncompressedSize: Int32(body.count),
                                                    compressedSize: Int32(compressed.count),
                                                    numValues: Int32(rows)).encode()
        bytes.append(contentsOf: header)
        bytes.append(contentsOf: compressed)
        // Parquet counts page headers in both chunk sizes.
        uncompressedSize += header.count + body.count
    }

    private func setStatistics(_ bounds: (min: [UInt8], max: [UInt8])?, nullCount: Int, numeric: Bool) {
        statistics = ParquetMetadata.Statistics(min: bounds?.min, max: bounds?.max,
                                                nullCount: Int64(nullCount), alsoDeprecatedMinMax: numeric)
    }
}

/// The least and greatest strings of a chunk by unsigned byte order of their UTF-8 (Parquet's
/// order for STRING; Swift's `<` on String orders by Unicode and would disagree), kept as bytes.
struct StringBounds {
    private(set) var min: [UInt8]?
    private(set) var max: [UInt8]?

    @inline(__always)
    mutating func add(_ utf8: UnsafeBufferPointer<UInt8>) {
        if let m = min { if Self.compare(utf8, m) < 0 { min = Array(utf8) } } else { min = Array(utf8) }
        if let m = max { if Self.compare(utf8, m) > 0 { max = Array(utf8) } } else { max = Array(utf8) }
    }

    var encoded: (min: [UInt8], max: [UInt8])? {
        guard let min, let max else { return nil }
        return (min, max)
    }

    private static func compare(_ a: UnsafeBufferPointer<UInt8>, _ b: [UInt8]) -> Int {
        b.withUnsafeBufferPointer { b in
            let n = Swift.min(a.count, b.count)
            if n > 0 {
                let c = memcmp(a.baseAddress!, b.baseAddress!, n)
                if c != 0 { return Int(c) }
            }
            return a.count - b.count
        }
    }
}
