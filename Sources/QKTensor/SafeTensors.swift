import Foundation

/// Element types that can appear in tensor files.
public enum DType: String, Sendable, CaseIterable {
    case f32 = "F32", f16 = "F16", bf16 = "BF16", f64 = "F64"
    case i8 = "I8", u8 = "U8", i16 = "I16", i32 = "I32", i64 = "I64", bool = "BOOL"

    public var byteSize: Int {
        switch self {
        case .f64, .i64: return 8
        case .f32, .i32: return 4
        case .f16, .bf16, .i16: return 2
        case .i8, .u8, .bool: return 1
        }
    }
    public var isFloat: Bool { [.f32, .f16, .bf16, .f64].contains(self) }
}

/// A memory-mapped `.safetensors` file (the Hugging Face format: an 8-byte little-endian header
/// length, a JSON header mapping names to `{dtype, shape, data_offsets}`, then the raw data).
///
/// Opening validates everything a later read relies on, so reads never go out of bounds:
/// header size within the file, well-formed JSON, known dtypes, non-negative shapes,
/// `shape × dtype` equal to the byte length, offsets inside the data section, and no overlaps.
public final class SafeTensorsFile: @unchecked Sendable {
    public struct Entry: Sendable {
        public let name: String
        public let dtype: DType
        public let shape: [Int]
        /// Byte range inside the data section.
        public let start: Int, end: Int
        public var count: Int { shape.reduce(1, *) }
    }

    public let path: String
    public let entries: [String: Entry]
    /// `__metadata__` string map, if present.
    public let metadata: [String: String]
    private let file: MappedFile
    private let dataStart: Int

    public var names: [String] { entries.keys.sorted() }

    public init(path: String) throws {
        self.path = path
        file = try MappedFile(path: path)
        let fail = { (m: String) in TensorFileError(file: path, message: m) }
        guard file.size >= 8 else { throw fail("not a safetensors file: \(file.size) bytes, shorter than the 8-byte header length") }
        var n: UInt64 = 0
        for i in 0..<8 { n |= UInt64(file.bytes[i]) << (8 * UInt64(i)) }
        guard n <= 100_000_000 else { throw fail("header length \(n) is implausibly large (corrupt or not a safetensors file)") }
        guard 8 + Int(n) <= file.size else {
            throw fail("header length \(n) exceeds the file size \(file.size) (truncated or corrupt)")
        }
        dataStart = 8 + Int(n)
        let headerBytes = Data(file.bytes[8..<dataStart])
        guard let json = try? JSONSerialization.jsonObject(with: headerBytes), let dict = json as? [String: Any] else {
            throw fail("header is not a JSON object")
        }
        var entries: [String: Entry] = [:]
        var meta: [String: String] = [:]
        let dataSize = file.size - dataStart
        for (name, value) in dict {
            if name == "__metadata__" {
                if let m = value as? [String: Any] { for (k, v) in m { meta[k] = "\(v)" } }
                continue
            }
            let tfail = { (m: String) in TensorFileError(file: path, tensor: name, message: m) }
            guard let info = value as? [String: Any] else { throw tfail("header entry is not an object") }
            guard let ds = info["dtype"] as? String else { throw tfail("missing dtype") }
            guard let dtype = DType(rawValue: ds) else { throw tfail("unsupported dtype \(ds)") }
            guard let shapeAny = info["shape"] as? [Any] else { throw tfail("missing shape") }
            var shape: [Int] = []
            for d in shapeAny {
                guard let v = JSONNumber.exactInt(d), v >= 0 else { throw tfail("bad shape \(JSONNumber.quoted(shapeAny))") }
                shape.append(v)
            }
            guard let offs = info["data_offsets"] as? [Any], offs.count == 2,
                  let s = JSONNumber.exactInt(offs[0]), let e = JSONNumber.exactInt(offs[1]) else {
                throw tfail("missing or malformed data_offsets")
            }
            guard s >= 0, e >= s, e <= dataSize else {
                throw tfail("data offsets [\(s), \(e)) lie outside the data section of \(dataSize) bytes (truncated or corrupt)")
            }
            // Checked arithmetic: a hostile shape ([2^62], [2^31, 2^31]) must not trap.
            let (elements, overflow) = shape.reduce((1, false)) { acc, d in
                let r = acc.0.multipliedReportingOverflow(by: d); return (r.partialValue, acc.1 || r.overflow)
            }
            let bytes = elements.multipliedReportingOverflow(by: dtype.byteSize)
            guard !overflow, !bytes.overflow, bytes.partialValue == e - s else {
                throw tfail("shape \(shape) × \(dtype.rawValue) is not the \(e - s) bytes its offsets span")
            }
            entries[name] = Entry(name: name, dtype: dtype, shape: shape, start: s, end: e)
        }
        // No two tensors may share bytes, and (as the format requires) together they fill the data
        // section exactly: a header length off by one still parses as JSON (padding), but would
        // shift every tensor by a byte.
        let sorted = entries.values.filter { $0.end > $0.start }.sorted { $0.start < $1.start }
        for i in sorted.indices.dropFirst() where sorted[i].start < sorted[i - 1].end {
            throw TensorFileError(file: path, tensor: sorted[i].name, message: "overlaps tensor '\(sorted[i - 1].name)'")
        }
        let covered = sorted.reduce(0) { $0 + ($1.end - $1.start) }
        guard covered == dataSize, sorted.first.map({ $0.start == 0 }) ?? true else {
            throw fail("its tensors cover \(covered) of the \(dataSize) data bytes after the \(n)-byte header (wrong header length, or truncated or padded)")
        }
        self.entries = entries
        self.metadata = meta
    }

    public func entry(_ name: String) throws -> Entry {
        guard let e = entries[name] else { throw TensorFileError(file: path, tensor: name, message: "not found in file") }
        return e
    }

    public func contains(_ name: String) -> Bool { entries[name] != nil }

    /// Raw bytes of a tensor (a view into the mapping).
    public func rawBytes(_ name: String) throws -> UnsafeRawBufferPointer {
        let e = try entry(name)
        return UnsafeRawBufferPointer(rebasing: file.bytes[(dataStart + e.start)..<(dataStart + e.end)])
    }

    /// Any float tensor decoded to Float32.
    public func floatTensor(_ name: String) throws -> Tensor {
        let e = try entry(name)
        let raw = try rawBytes(name)
        var out = [Float](repeating: 0, count: e.count)
        switch e.dtype {
        case .f32:
            out.withUnsafeMutableBytes { $0.copyMemory(from: raw) }
        case .f16:
            for i in 0..<e.count { out[i] = HalfFloat.fromFP16(raw.loadUnaligned(fromByteOffset: 2 * i, as: UInt16.self)) }
        case .bf16:
            for i in 0..<e.count { out[i] = HalfFloat.fromBF16(raw.loadUnaligned(fromByteOffset: 2 * i, as: UInt16.self)) }
        case .f64:
            for i in 0..<e.count { out[i] = Float(raw.loadUnaligned(fromByteOffset: 8 * i, as: Double.self)) }
        default:
            throw TensorFileError(file: path, tensor: name, message: "expected a float tensor, found \(e.dtype.rawValue)")
        }
        return Tensor(shape: e.shape, data: out)
    }

    /// Any integer tensor widened to Int.
    public func intArray(_ name: String) throws -> (shape: [Int], values: [Int]) {
        let e = try entry(name)
        let raw = try rawBytes(name)
        var out = [Int](repeating: 0, count: e.count)
        switch e.dtype {
        case .i64: for i in 0..<e.count { out[i] = Int(raw.loadUnaligned(fromByteOffset: 8 * i, as: Int64.self)) }
        case .i32: for i in 0..<e.count { out[i] = Int(raw.loadUnaligned(fromByteOffset: 4 * i, as: Int32.self)) }
        case .i16: for i in 0..<e.count { out[i] = Int(raw.loadUnaligned(fromByteOffset: 2 * i, as: Int16.self)) }
        case .i8: for i in 0..<e.count { out[i] = Int(raw.load(fromByteOffset: i, as: Int8.self)) }
        case .u8, .bool: for i in 0..<e.count { out[i] = Int(raw[i]) }
        default:
            throw TensorFileError(file: path, tensor: name, message: "expected an integer tensor, found \(e.dtype.rawValue)")
        }
        return (e.shape, out)
    }
}

/// Writes a `.safetensors` file atomically (to a temporary name, then renamed), so a failed
/// or interrupted write never leaves a partial output file behind.
public struct SafeTensorsWriter {
    private var items: [(name: String, dtype: DType, shape: [Int], bytes: Data)] = []
    public var metadata: [String: String] = [:]

    public init() {}

    public mutating func add(_ name: String, _ t: Tensor) {
        items.append((name, .f32, t.shape, t.data.withUnsafeBytes { Data($0) }))
    }
    public mutating func add(_ name: String, shape: [Int], float32 values: [Float]) {
        precondition(shape.reduce(1, *) == values.count)
        items.append((name, .f32, shape, values.withUnsafeBytes { Data($0) }))
    }
    public mutating func add(_ name: String, shape: [Int], int32 values: [Int32]) {
        precondition(shape.reduce(1, *) == values.count)
        items.append((name, .i32, shape, values.withUnsafeBytes { Data($0) }))
    }
    public mutating func add(_ name: String, shape: [Int], int64 values: [Int64]) {
        precondition(shape.reduce(1, *) == values.count)
        items.append((name, .i64, shape, values.withUnsafeBytes { Data($0) }))
    }
    /// Raw bytes of any dtype (little-endian).
    public mutating func add(_ name: String, dtype: DType, shape: [Int], bytes: Data) {
        precondition(shape.reduce(1, *) * dtype.byteSize == bytes.count)
        items.append((name, dtype, shape, bytes))
    }

    /// The header JSON, in insertion order, padded with spaces to a multiple of 8 bytes.
    func header() -> Data {
        var parts: [String] = []
        if !metadata.isEmpty {
            let m = metadata.sorted { $0.key < $1.key }.map { "\(jsonString($0.key)):\(jsonString($0.value))" }
            parts.append("\"__metadata__\":{\(m.joined(separator: ","))}")
        }
        var off = 0
        for it in items {
            let end = off + it.bytes.count
            parts.append("\(jsonString(it.name)):{\"dtype\":\"\(it.dtype.rawValue)\",\"shape\":[\(it.shape.map(String.init).joined(separator: ","))],\"data_offsets\":[\(off),\(end)]}")
            off = end
        }
        var h = Data("{\(parts.joined(separator: ","))}".utf8)
        while h.count % 8 != 0 { h.append(0x20) }
        return h
    }

    public func write(to path: String) throws {
        let h = header()
        let tmp = path + ".partial-\(getpid())"
        guard FileManager.default.createFile(atPath: tmp, contents: nil) else {
            throw TensorFileError(file: path, message: "cannot create output file")
        }
        do {
            let fh = try FileHandle(forWritingTo: URL(fileURLWithPath: tmp))
            var len = UInt64(h.count).littleEndian
            try fh.write(contentsOf: Data(bytes: &len, count: 8))
            try fh.write(contentsOf: h)
            for it in items { try fh.write(contentsOf: it.bytes) }
            try fh.close()
            if FileManager.default.fileExists(atPath: path) { try FileManager.default.removeItem(atPath: path) }
            try FileManager.default.moveItem(atPath: tmp, toPath: path)
        } catch {
            try? FileManager.default.removeItem(atPath: tmp)
            throw TensorFileError(file: path, message: "write failed: \(error)")
        }
    }
}

/// `s` as a JSON string literal (quotes included), escaping what JSON requires.
public func jsonString(_ s: String) -> String {
    var out = "\""
    for u in s.unicodeScalars {
        switch u {
        case "\"": out += "\\\""
        case "\\": out += "\\\\"
        case "\n": out += "\\n"
        case "\r": out += "\\r"
        case "\t": out += "\\t"
        default:
            if u.value < 0x20 { out += String(format: "\\u%04x", u.value) } else { out.unicodeScalars.append(u) }
        }
    }
    return out + "\""
}
