import QKTensor

/// A bounds-checked little-endian cursor over the header of a GGUF file. Every read checks the
/// remaining length first, so a truncated or corrupt header becomes an error naming what was
/// being read, never an out-of-bounds access.
struct GGUFCursor {
    let bytes: UnsafeRawBufferPointer
    let path: String
    var offset = 0

    func fail(_ what: String) -> TensorFileError {
        TensorFileError(file: path, message: "GGUF header truncated or corrupt: \(what) at byte \(offset) runs past the end of the \(bytes.count)-byte file")
    }

    mutating func take<T: FixedWidthInteger>(_: T.Type, _ what: String) throws -> T {
        let n = MemoryLayout<T>.size
        guard offset + n <= bytes.count, let base = bytes.baseAddress else { throw fail(what) }
        let v = T(littleEndian: base.loadUnaligned(fromByteOffset: offset, as: T.self))
        offset += n
        return v
    }

    /// A count or length that must also fit in what is left of the file (each element takes at
    /// least `minimumElementSize` bytes), so a corrupt count cannot trigger a huge allocation.
    mutating func count(_ what: String, minimumElementSize: Int) throws -> Int {
        let start = offset
        let n = try take(UInt64.self, what)
        let left = UInt64(bytes.count - offset)
        guard n <= left / UInt64(max(minimumElementSize, 1)) else {
            offset = start
            throw TensorFileError(file: path, message: "GGUF header truncated or corrupt: \(what) \(n) at byte \(start) exceeds what the \(bytes.count)-byte file can hold")
        }
        return Int(n)
    }

    /// A metadata key or tensor name: at most 64 KiB (llama.cpp's own limit is far below), so a
    /// corrupt length byte cannot make a file-sized "name" that every later message would copy.
    mutating func name(_ what: String) throws -> String {
        let start = offset
        let n = try take(UInt64.self, "length of \(what)")
        offset = start
        guard n <= 65536 else {
            throw TensorFileError(file: path, message: "GGUF header corrupt: \(what) at byte \(start) claims \(n) bytes (names are at most 65536)")
        }
        return try string(what)
    }

    mutating func string(_ what: String) throws -> String {
        let n = try count("length of \(what)", minimumElementSize: 1)
        guard let base = bytes.baseAddress else { throw fail(what) }
        let s = String(decoding: UnsafeRawBufferPointer(start: base + offset, count: n), as: UTF8.self)
        offset += n
        return s
    }

    mutating func value(_ type: GGUFValueType, key: String, depth: Int = 0) throws -> GGUFValue {
        switch type {
        case .uint8: return .uint8(try take(UInt8.self, key))
        case .int8: return .int8(try take(Int8.self, key))
        case .uint16: return .uint16(try take(UInt16.self, key))
        case .int16: return .int16(try take(Int16.self, key))
        case .uint32: return .uint32(try take(UInt32.self, key))
        case .int32: return .int32(try take(Int32.self, key))
        case .uint64: return .uint64(try take(UInt64.self, key))
        case .int64: return .int64(try take(Int64.self, key))
        case .float32: return .float32(Float(bitPattern: try take(UInt32.self, key)))
        case .float64: return .float64(Double(bitPattern: try take(UInt64.self, key)))
        case .bool:
            let b = try take(UInt8.self, key)
            guard b <= 1 else { throw TensorFileError(file: path, message: "GGUF metadata '\(key)': bool byte \(b) is neither 0 nor 1") }
            return .bool(b == 1)
        case .string: return .string(try string(key))
        case .array:
            guard depth < 8 else { throw TensorFileError(file: path, message: "GGUF metadata '\(key)': arrays nested deeper than 8 levels") }
            let tagAt = offset
            let tag = try take(UInt32.self, "array element type of '\(key)'")
            guard let element = GGUFValueType(rawValue: tag) else {
                throw TensorFileError(file: path, message: "GGUF metadata '\(key)': unknown array element type \(tag) at byte \(tagAt)")
            }
            let n = try count("element count of '\(key)'", minimumElementSize: element.fixedSize ?? 8)
            var values: [GGUFValue] = []
            // Bounded by the file, but not trusted for memory up front (a 100M count of 8-byte
            // elements would reserve gigabytes before the first element fails to parse).
            values.reserveCapacity(min(n, 1 << 16))
            for _ in 0..<n { values.append(try value(element, key: key, depth: depth + 1)) }
            return .array(elementType: element, values)
        }
    }
}
