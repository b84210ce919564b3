/// One GGUF metadata value. GGUF stores every key/value pair with a type tag; arrays carry
/// their element type and may nest (an array of arrays), so the value is recursive.
public indirect enum GGUFValue: Sendable, Equatable {
    case uint8(UInt8), int8(Int8), uint16(UInt16), int16(Int16)
    case uint32(UInt32), int32(Int32), uint64(UInt64), int64(Int64)
    case float32(Float), float64(Double), bool(Bool), string(String)
    /// Elements all share `elementType` (a GGUF value type tag).
    case array(elementType: GGUFValueType, [GGUFValue])

    /// Any integer value as `Int` (nil for non-integers and for a UInt64 beyond Int.max).
    public var int: Int? {
        switch self {
        case .uint8(let v): return Int(v)
        case .int8(let v): return Int(v)
        case .uint16(let v): return Int(v)
        case .int16(let v): return Int(v)
        case .uint32(let v): return Int(v)
        case .int32(let v): return Int(v)
        case .uint64(let v): return v <= UInt64(Int.max) ? Int(v) : nil
        case .int64(let v): return Int(v)
        default: return nil
        }
    }

    /// Float or integer values as `Double`.
    public var double: Double? {
        switch self {
        case .float32(let v): return Double(v)
        case .float64(let v): return v
        default: return int.map(Double.init)
        }
    }

    public var string: String? { if case .string(let s) = self { return s }; return nil }
    public var bool: Bool? { if case .bool(let b) = self { return b }; return nil }
    public var array: [GGUFValue]? { if case .array(_, let a) = self { return a }; return nil }

    /// An array of strings (tokenizer vocabularies and merges), nil if this is anything else.
    public var strings: [String]? {
        guard case .array(let t, let a) = self, t == .string else { return nil }
        return a.compactMap(\.string)
    }

    /// An array of integers (token types), nil if this is anything else.
    public var ints: [Int]? {
        guard let a = array else { return nil }
        let v = a.compactMap(\.int)
        return v.count == a.count ? v : nil
    }
}

/// The type tags of GGUF metadata values, as numbered in the format.
public enum GGUFValueType: UInt32, Sendable, Equatable, CustomStringConvertible {
    case uint8 = 0, int8 = 1, uint16 = 2, int16 = 3, uint32 = 4, int32 = 5, float32 = 6, bool = 7
    case string = 8, array = 9, uint64 = 10, int64 = 11, float64 = 12

    public var description: String { String(describing: self).uppercased() }

    /// Bytes per value for fixed-size types (nil for strings and arrays).
    var fixedSize: Int? {
        switch self {
        case .uint8, .int8, .bool: return 1
        case .uint16, .int16: return 2
        case .uint32, .int32, .float32: return 4
        case .uint64, .int64, .float64: return 8
        case .string, .array: return nil
        }
    }
}
