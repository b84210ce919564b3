import QKTensor

/// A memory-mapped GGUF file (llama.cpp's single-file model format), versions 2 and 3.
///
/// Layout: magic `GGUF`, version (u32), tensor count and metadata count (u64), the metadata
/// key/value pairs, the tensor infos (name, dims innermost-first, GGML type, offset), then —
/// padded to `general.alignment` (default 32) — the tensor data, each tensor at its offset from
/// the data start. Everything is validated at open: counts against the file size, each tensor's
/// byte span inside the file, alignment and non-overlap. Tensors are decoded only when asked for.
public final class GGUFFile: @unchecked Sendable {
    public struct TensorInfo: Sendable, Equatable {
        public let name: String
        /// Row-major shape, outermost first (GGUF lists dims innermost first; this is reversed,
        /// so a `[out, in]` matrix reads as in PyTorch).
        public let shape: [Int]
        public let type: GGMLType
        /// Offset from the start of the data section.
        public let offset: Int
        public var count: Int { shape.reduce(1, *) }
    }

    public let path: String
    public let version: UInt32
    public let metadata: [String: GGUFValue]
    /// Metadata keys in file order.
    public let metadataKeys: [String]
    public let tensors: [String: TensorInfo]
    /// Tensor names in file order.
    public let tensorNames: [String]
    public let alignment: Int
    private let file: MappedFile
    private let dataStart: Int

    public init(path: String) throws {
        self.path = path
        let parsed = try oneLineErrors { try GGUFFile.parse(path: path) }
        file = parsed.file; version = parsed.version; metadata = parsed.metadata; metadataKeys = parsed.metadataKeys
        tensors = parsed.tensors; tensorNames = parsed.tensorNames; alignment = parsed.alignment; dataStart = parsed.dataStart
    }

    private struct Parsed {
        var file: MappedFile, version: UInt32, metadata: [String: GGUFValue], metadataKeys: [String]
        var tensors: [String: TensorInfo], tensorNames: [String], alignment: Int, dataStart: Int
    }

    private static func parse(path: String) throws -> Parsed {
        let file = try MappedFile(path: path)
        var c = GGUFCursor(bytes: file.bytes, path: path)
        guard file.size >= 4 else { throw TensorFileError(file: path, message: "not a GGUF file: only \(file.size) bytes") }
        let magic = try c.take(UInt32.self, "magic")
        guard magic == 0x4655_4747 else {  // "GGUF" little-endian
            let shown = (0..<4).map { b -> String in
                let ch = UInt8((magic >> (8 * UInt32(b))) & 0xFF)
                return (32..<127).contains(ch) ? String(UnicodeScalar(ch)) : "\\x" + String(ch, radix: 16)
            }.joined()
            throw TensorFileError(file: path, message: "not a GGUF file: magic is '\(shown)', expected 'GGUF'")
        }
        let version = try c.take(UInt32.self, "version")
        // The magic is always written little-endian; a big-endian file shows in its version.
        if version.byteSwapped == 2 || version.byteSwapped == 3 {
            throw TensorFileError(file: path, message: "big-endian GGUF files are not supported (only little-endian)")
        }
        guard version == 2 || version == 3 else {
            throw TensorFileError(file: path, message: "GGUF version \(version) is not supported (only versions 2 and 3)")
        }
        let nTensors = try c.count("tensor count", minimumElementSize: 24)
        let nKV = try c.count("metadata count", minimumElementSize: 12)

        var meta: [String: GGUFValue] = [:], keys: [String] = []
        for _ in 0..<nKV {
            let key = try c.name("metadata key")
            let label = key.escapedForMessage   // what messages quote: one short line whatever the key holds
            let tagAt = c.offset
            let tag = try c.take(UInt32.self, "type of metadata '\(label)'")
            guard let type = GGUFValueType(rawValue: tag) else {
                throw TensorFileError(file: path, message: "GGUF metadata '\(label)': unknown value type \(tag) at byte \(tagAt)")
            }
            if meta[key] == nil { keys.append(key) }
            meta[key] = try c.value(type, key: label)
        }

        var align = 32
        if let a = meta["general.alignment"] {
            guard let v = a.int, v > 0, v & (v - 1) == 0 else {
                throw TensorFileError(file: path, message: "GGUF metadata 'general.alignment' is \(String(describing: a).escapedForMessage), not a positive power of two")
            }
            align = v
        }

        var infos: [String: TensorInfo] = [:], names: [String] = []
        for _ in 0..<nTensors {
            let name = try c.name("tensor name")
            let nDims = try c.take(UInt32.self, "dimension count of tensor '\(name)'")
            guard nDims <= 8 else { throw TensorFileError(file: path, tensor: name, message: "\(nDims) dimensions (GGUF allows at most 8)") }
            var dims: [Int] = []
            for d in 0..<Int(nDims) {
                let v = try c.take(UInt64.self, "dimension \(d) of tensor '\(name)'")
                guard v <= UInt64(Int32.max) * 1024 else { throw TensorFileError(file: path, tensor: name, message: "dimension \(d) is \(v), implausibly large (corrupt file)") }
                dims.append(Int(v))
            }
            let type = GGMLType(rawValue: try c.take(UInt32.self, "type of tensor '\(name)'"))
            let off = try c.take(UInt64.self, "offset of tensor '\(name)'")
            guard off <= UInt64(file.size) else {
                throw TensorFileError(file: path, tensor: name, message: "data offset \(off) lies outside the \(file.size)-byte file")
            }
            guard infos[name] == nil else { throw TensorFileError(file: path, tensor: name, message: "appears twice in the tensor table") }
            infos[name] = TensorInfo(name: name, shape: dims.reversed(), type: type, offset: Int(off))
            names.append(name)
        }
        let dataStart = (c.offset + align - 1) / align * align

        // Byte spans: every tensor must lie inside the file, aligned, without overlapping another.
        var spans: [(start: Int, end: Int, name: String)] = []
        for name in names {
            let t = infos[name]!
            guard t.offset % align == 0 else {
                throw TensorFileError(file: path, tensor: name, message: "data offset \(t.offset) is not a multiple of the alignment \(align)")
            }
            // Unsupported types are checked when the tensor is read; their size is unknown here.
            guard t.type.isSupported else { continue }
            guard let size = GGUFFile.byteSize(t) else {
                throw TensorFileError(file: path, tensor: name, message: "shape \(t.shape) is not a whole number of \(t.type) blocks or overflows")
            }
            let start = dataStart + t.offset
            guard size <= file.size, start <= file.size - size else {
                throw TensorFileError(file: path, tensor: name, message: "data [\(start), \(start + size)) runs past the end of the \(file.size)-byte file (truncated?)")
            }
            spans.append((start, start + size, name))
        }
        spans.sort { $0.start < $1.start }
        for i in spans.indices.dropFirst() where spans[i].start < spans[i - 1].end && spans[i].end > spans[i].start {
            throw TensorFileError(file: path, tensor: spans[i].name, message: "data overlaps tensor '\(spans[i - 1].name)'")
        }
        return Parsed(file: file, version: version, metadata: meta, metadataKeys: keys, tensors: infos, tensorNames: names,
                      alignment: align, dataStart: dataStart)
    }

    /// Bytes a tensor's data takes, nil for unsupported types (and for element counts that are
    /// not a whole number of blocks).
    static func byteSize(_ t: TensorInfo) -> Int? {
        guard let l = t.type.layout else { return nil }
        let (n, overflow) = t.shape.reduce((1, false)) { acc, d in
            let r = acc.0.multipliedReportingOverflow(by: d); return (r.partialValue, acc.1 || r.overflow)
        }
        guard !overflow, n % l.elements == 0 else { return nil }
        return n / l.elements * l.bytes
    }

    public func contains(_ name: String) -> Bool { tensors[name] != nil }

    public func info(_ name: String) throws -> TensorInfo {
        guard let t = tensors[name] else { throw TensorFileError(file: path, tensor: name.escapedForMessage, message: "not found in GGUF file") }
        return t
    }

    /// Raw bytes of a tensor's data (a view into the mapping).
    public func rawBytes(_ name: String) throws -> UnsafeRawBufferPointer {
        try oneLineErrors { try rawBytesUnchecked(name) }
    }

    private func rawBytesUnchecked(_ name: String) throws -> UnsafeRawBufferPointer {
        let t = try info(name)
        guard t.type.isSupported else {
            throw TensorFileError(file: path, tensor: name, message: "GGML type \(t.type) is not supported (qkdb reads F32, F16, BF16, Q8_0, Q4_0, Q4_1)")
        }
        guard let size = GGUFFile.byteSize(t) else {
            throw TensorFileError(file: path, tensor: name, message: "\(t.count) elements is not a whole number of \(t.type) blocks")
        }
        let start = dataStart + t.offset
        return UnsafeRawBufferPointer(rebasing: file.bytes[start..<(start + size)])
    }

    /// A tensor dequantised to Float32, row-major with the outermost dimension first.
    public func tensor(_ name: String) throws -> Tensor {
        let t = try info(name)
        let raw = try rawBytes(name)
        var out = Tensor(zeros: t.shape)
        out.data.withUnsafeMutableBufferPointer { GGUFDequantize.decode(t.type, raw, count: t.count, into: $0.baseAddress!) }
        return out
    }

    // MARK: metadata

    public subscript(key: String) -> GGUFValue? { metadata[key] }

    /// An integer metadata value, or an error naming the key.
    public func int(_ key: String) throws -> Int {
        guard let v = metadata[key] else { throw TensorFileError(file: path, message: "GGUF metadata '\(key.escapedForMessage)' is missing") }
        guard let i = v.int else { throw TensorFileError(file: path, message: "GGUF metadata '\(key.escapedForMessage)' is \(String(describing: v).escapedForMessage), not an integer") }
        return i
    }

    public func double(_ key: String) throws -> Double {
        guard let v = metadata[key] else { throw TensorFileError(file: path, message: "GGUF metadata '\(key.escapedForMessage)' is missing") }
        guard let d = v.double else { throw TensorFileError(file: path, message: "GGUF metadata '\(key.escapedForMessage)' is \(String(describing: v).escapedForMessage), not a number") }
        return d
    }

    public func string(_ key: String) throws -> String {
        guard let v = metadata[key] else { throw TensorFileError(file: path, message: "GGUF metadata '\(key.escapedForMessage)' is missing") }
        guard let s = v.string else { throw TensorFileError(file: path, message: "GGUF metadata '\(key.escapedForMessage)' is \(String(describing: v).escapedForMessage), not a string") }
        return s
    }
}
