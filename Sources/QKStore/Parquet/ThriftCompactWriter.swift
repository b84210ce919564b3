/// Encodes structs in Thrift's compact protocol, the encoding of every Parquet header and footer.
///
/// Only the writing half, and only the shapes Parquet's metadata uses: structs of i32, i64,
/// binary/string, bool, nested struct and list fields. A struct is its fields in any order, each
/// led by a one-byte header, then a stop byte (0):
///
///     var w = ThriftCompactWriter()
///     w.field(1, i32: 3)          // 0x15 0x06: field delta 1, type i32 (5); zigzag(3) = 6
///     w.field(3, string: "a")     // 0x28 0x01 0x61: delta 2, type binary (8); length 1, "a"
///     w.stop()                    // 0x00
///
/// Field ids are written as the difference from the previous field's id when that is 1...15
/// (always so in Parquet's ascending fields); a nested struct restarts the count from 0.
struct ThriftCompactWriter {
    /// The compact protocol's type codes, as they appear in field and list headers.
    enum FieldType: UInt8 {
        case boolTrue = 1, boolFalse = 2, byte = 3, i16 = 4, i32 = 5, i64 = 6, double = 7
        case binary = 8, list = 9, set = 10, map = 11, structure = 12
    }

    private(set) var bytes: [UInt8] = []
    /// The id of the last field written in the struct being written; 0 at its start.
    private var lastFieldID: Int16 = 0

    init() { bytes.reserveCapacity(256) }

    // MARK: Fields

    mutating func field(_ id: Int16, i32 value: Int32) {
        fieldHeader(id, .i32)
        varint(zigzag(Int64(value)))
    }

    mutating func field(_ id: Int16, i64 value: Int64) {
        fieldHeader(id, .i64)
        varint(zigzag(value))
    }

    /// A bool field has no value bytes: the value is the header's type (1 true, 2 false).
    mutating func field(_ id: Int16, bool value: Bool) {
        fieldHeader(id, value ? .boolTrue : .boolFalse)
    }

    mutating func field(_ id: Int16, binary value: [UInt8]) {
        fieldHeader(id, .binary)
        binary(value)
    }

    mutating func field(_ id: Int16, string value: String) {
        field(id, binary: Array(value.utf8))
    }

    /// A nested struct: `body` writes its fields (ids counted afresh from 0); the stop byte follows.
    mutating func field(_ id: Int16, struct body: (inout ThriftCompactWriter) -> Void) {
        fieldHeader(id, .structure)
        nestedStruct(body)
    }

    mutating func field(_ id: Int16, i32List values: [Int32]) {
        fieldHeader(id, .list)
        listHeader(.i32, count: values.count)
        for v in values { varint(zigzag(Int64(v))) }
    }

    mutating func field(_ id: Int16, stringList values: [String]) {
        fieldHeader(id, .list)
        listHeader(.binary, count: values.count)
        for v in values { binary(Array(v.utf8)) }
    }

    /// A list of structs, each written by `each` (its fields only; stop bytes are added here).
    mutating func field<T>(_ id: Int16, structList items: [T], each: (inout ThriftCompactWriter, T) -> Void) {
        fieldHeader(id, .list)
        listHeader(.structure, count: items.count)
        for item in items { nestedStruct { each(&$0, item) } }
    }

    /// Ends the outermost struct (nested ones end themselves).
    mutating func stop() { bytes.append(0) }

    // MARK: Encoding pieces

    /// Zigzag maps signed to unsigned so small magnitudes stay short: 0→0, -1→1, 1→2, -2→3.
    func zigzag(_ v: Int64) -> UInt64 { UInt64(bitPattern: (v << 1) ^ (v >> 63)) }

    /// ULEB128: seven bits a byte, low bits first, the high bit set on every byte but the last.
    mutating func varint(_ value: UInt64) {
        var v = value
        while v >= 0x80 {
            bytes.append(UInt8(truncatingIfNeeded: v) | 0x80)
            v >>= 7
        }
        bytes.append(UInt8(v))
    }

    private mutating func fieldHeader(_ id: Int16, _ type: FieldType) {
        let delta = Int(id) - Int(lastFieldID)
        if delta > 0 && delta <= 15 {
            bytes.append(UInt8(delta) << 4 | type.rawValue)
        } else {
            // The long form: the type alone, then the id as a zigzag varint (an i16).
            bytes.append(type.rawValue)
            varint(zigzag(Int64(id)))
        }
        lastFieldID = id
    }

    /// Sizes up to 14 share a byte with the element type; larger ones follow it as a varint.
    private mutating func listHeader(_ element: FieldType, count: Int) {
        if count < 15 {
            bytes.append(UInt8(count) << 4 | element.rawValue)
        } else {
            bytes.append(0xF0 | element.rawValue)
            varint(UInt64(count))
        }
    }

    private mutating func binary(_ value: [UInt8]) {
        varint(UInt64(value.count))
        bytes.append(contentsOf: value)
    }

    private mutating func nestedStruct(_ body: (inout ThriftCompactWriter) -> Void) {
        let outer = lastFieldID
        lastFieldID = 0
        body(&self)
        bytes.append(0)
        lastFieldID = outer
    }
}
