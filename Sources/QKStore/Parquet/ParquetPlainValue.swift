/// A fixed-width value Parquet stores PLAIN: its little-endian bytes, as in memory on every
/// platform Swift runs on here (x86-64 and arm64 are little-endian).
protocol ParquetPlainValue: Comparable {
    static var physicalType: ParquetMetadata.PhysicalType { get }
    /// The bounds as the spec asks them written: for floats a zero minimum is -0.0 and a zero
    /// maximum +0.0, so a reader pruning on them never skips a row of the other zero.
    static func statisticsBounds(min: Self, max: Self) -> (min: Self, max: Self)
    /// The least and greatest ordered value of a page; nil when it has none.
    ///
    /// Written out for each type rather than once generically: tests run debug builds, where
    /// an unspecialized generic loop costs ~100x the concrete one (metadata lookups per element).
    static func bounds(_ values: UnsafeBufferPointer<Self>) -> (min: Self, max: Self)?
}

extension Int32: ParquetPlainValue {
    static var physicalType: ParquetMetadata.PhysicalType { .int32 }
    static func statisticsBounds(min: Int32, max: Int32) -> (min: Int32, max: Int32) { (min, max) }
    static func bounds(_ values: UnsafeBufferPointer<Int32>) -> (min: Int32, max: Int32)? {
        guard var lo = values.first else { return nil }
        var hi = lo
        for v in values {
            lo = Swift.min(lo, v)
            hi = Swift.max(hi, v)
        }
        return (lo, hi)
    }
}

extension Int64: ParquetPlainValue {
    static var physicalType: ParquetMetadata.PhysicalType { .int64 }
    static func statisticsBounds(min: Int64, max: Int64) -> (min: Int64, max: Int64) { (min, max) }
    static func bounds(_ values: UnsafeBufferPointer<Int64>) -> (min: Int64, max: Int64)? {
        guard var lo = values.first else { return nil }
        var hi = lo
        for v in values {
            lo = Swift.min(lo, v)
            hi = Swift.max(hi, v)
        }
        return (lo, hi)
    }
}

extension Float: ParquetPlainValue {
    static var physicalType: ParquetMetadata.PhysicalType { .float }
    static func statisticsBounds(min: Float, max: Float) -> (min: Float, max: Float) {
        (min == 0 ? -0.0 : min, max == 0 ? 0.0 : max)
    }
    static func bounds(_ values: UnsafeBufferPointer<Float>) -> (min: Float, max: Float)? {
        // Seeded by the first ordered value, after which a NaN fails both comparisons.
        guard let seed = values.firstIndex(where: { !$0.isNaN }) else { return nil }
        var lo = values[seed], hi = lo
        for v in values {
            if v < lo { lo = v }
            if v > hi { hi = v }
        }
        return (lo, hi)
    }
}

extension Double: ParquetPlainValue {
    static var physicalType: ParquetMetadata.PhysicalType { .double }
    static func statisticsBounds(min: Double, max: Double) -> (min: Double, max: Double) {
        (min == 0 ? -0.0 : min, max == 0 ? 0.0 : max)
    }
    static func bounds(_ values: UnsafeBufferPointer<Double>) -> (min: Double, max: Double)? {
        // Seeded by the first ordered value, after which a NaN fails both comparisons.
        guard let seed = values.firstIndex(where: { !$0.isNaN }) else { return nil }
        var lo = values[seed], hi = lo
        for v in values {
            if v < lo { lo = v }
            if v > hi { hi = v }
        }
        return (lo, hi)
    }
}

/// The running minimum and maximum of a column chunk's ordered values (NaN left out).
struct PlainBounds<T: ParquetPlainValue> {
    private(set) var min: T?
    private(set) var max: T?

    mutating func add(_ values: UnsafeBufferPointer<T>) {
        guard var (lo, hi) = T.bounds(values) else { return }
        if let m = min, m < lo { lo = m }
        if let m = max, m > hi { hi = m }
        min = lo
        max = hi
    }

    /// The bounds as PLAIN-encoded bytes, the form Statistics carries; nil with no ordered value.
    var encoded: (min: [UInt8], max: [UInt8])? {
        guard let min, let max else { return nil }
        let b = T.statisticsBounds(min: min, max: max)
        return (withUnsafeBytes(of: b.min) { Array($0) }, withUnsafeBytes(of: b.max) { Array($0) })
    }
}
