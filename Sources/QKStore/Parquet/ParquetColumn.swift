/// One column of a flat Parquet table: its name, value type and whether it may hold nulls.
///
///     let columns = [ParquetColumn("feature", .int32),
///                    ParquetColumn("score", .float),
///                    ParquetColumn("label", .string, nullable: true)]
public struct ParquetColumn: Sendable, Equatable {
    /// The value types, as Parquet readers report them: int32, int64, float, double and string
    /// (UTF-8 text: a BYTE_ARRAY annotated STRING).
    public enum ValueType: Sendable, Equatable { case int32, int64, float, double, string }

    public let name: String
    public let type: ValueType
    /// An optional column (Parquet OPTIONAL) takes `ParquetColumnData`'s nullable cases.
    public let nullable: Bool

    public init(_ name: String, _ type: ValueType, nullable: Bool = false) {
        self.name = name
        self.type = type
        self.nullable = nullable
    }
}

/// The values of one column for one row group, typed so no value is boxed or converted.
/// A column declared `nullable` takes the `nullable…` case of its type; nil is a null:
///
///     try writer.append(rowGroup: [.int32([7, 8, 9]),
///                                  .float([0.5, 0.25, 1]),
///                                  .nullableString(["induction", nil, "sink"])])
public enum ParquetColumnData {
    case int32([Int32]), nullableInt32([Int32?])
    case int64([Int64]), nullableInt64([Int64?])
    case float([Float]), nullableFloat([Float?])
    case double([Double]), nullableDouble([Double?])
    case string([String]), nullableString([String?])

    /// The number of rows, nulls included.
    public var count: Int {
        switch self {
        case .int32(let v): v.count
        case .nullableInt32(let v): v.count
        case .int64(let v): v.count
        case .nullableInt64(let v): v.count
        case .float(let v): v.count
        case .nullableFloat(let v): v.count
        case .double(let v): v.count
        case .nullableDouble(let v): v.count
        case .string(let v): v.count
        case .nullableString(let v): v.count
        }
    }

    /// The column declaration these values fit: (type, nullable).
    var shape: (type: ParquetColumn.ValueType, nullable: Bool) {
        switch self {
        case .int32: (.int32, false)
        case .nullableInt32: (.int32, true)
        case .int64: (.int64, false)
        case .nullableInt64: (.int64, true)
        case .float: (.float, false)
        case .nullableFloat: (.float, true)
        case .double: (.double, false)
        case .nullableDouble: (.double, true)
        case .string: (.string, false)
        case .nullableString: (.string, true)
        }
    }
}
