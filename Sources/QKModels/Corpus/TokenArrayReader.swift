import Foundation
import QKTensor

/// Reads pre-tokenized input: an int32/int64 array of shape `[n, context]`, either a NumPy
/// `.npy` file or the tensor `tokens` of a `.safetensors` file (what `qkdb harvest` writes, so
/// a harvest's tokens can be fed back in). Ids are taken as they are: no BOS or separators are
/// added. Range checks against a model's vocabulary happen when the model runs.
public enum TokenArrayReader {
    public static func read(path: String) throws -> SequenceSet {
        var isDirectory: ObjCBool = false
        guard FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory), !isDirectory.boolValue else {
            throw ModelError("\(path): token file does not exist")
        }
        switch (path as NSString).pathExtension.lowercased() {
        case "npy": return try readNPY(path: path)
        case "safetensors": return try readSafeTensors(path: path)
        default: throw ModelError("\(path): unsupported token file (expected .npy or .safetensors)")
        }
    }

    static func readSafeTensors(path: String) throws -> SequenceSet {
        let file = try SafeTensorsFile(path: path)
        guard file.contains("tokens") else { throw ModelError("\(path): no tensor 'tokens'") }
        let entry = try file.entry("tokens")
        guard entry.dtype == .i32 || entry.dtype == .i64 else {
            throw ModelError("\(path): tensor 'tokens' is \(entry.dtype.rawValue), expected I32 or I64")
        }
        let (shape, values) = try file.intArray("tokens")
        return try make(shape: shape, values: values, path: path)
    }

    static func make(shape: [Int], values: [Int], path: String) throws -> SequenceSet {
        guard shape.count == 2 else { throw ModelError("\(path): tokens have shape \(shape), expected [n, context]") }
        guard shape[0] > 0, shape[1] > 0 else { throw ModelError("\(path): tokens have shape \(shape): no tokens") }
        var ids = [Int32](repeating: 0, count: values.count)
        for (i, v) in values.enumerated() {
            guard v >= 0, v <= Int(Int32.max) else {
                throw ModelError("\(path): token id \(v) (sequence \(i / shape[1]), position \(i % shape[1])) is not a valid id")
            }
            ids[i] = Int32(v)
        }
        return SequenceSet(ids: ids, context: shape[1])
    }

    /// NumPy's format: magic `\x93NUMPY`, version, a little-endian header length, a Python-dict
    /// header (`descr`, `fortran_order`, `shape`), then the raw array.
    static func readNPY(path: String) throws -> SequenceSet {
        let file = try MappedFile(path: path)
        let b = file.bytes
        let fail = { (m: String) in ModelError("\(path): \(m)") }
        let magic: [UInt8] = [0x93, 0x4E, 0x55, 0x4D, 0x50, 0x59]
        guard b.count >= 10, Array(b[0..<6]) == magic else { throw fail("not a .npy file (bad magic)") }
        let major = b[6]
        let headerLength: Int, headerStart: Int
        switch major {
        case 1: headerLength = Int(b[8]) | Int(b[9]) << 8; headerStart = 10
        case 2, 3:
            guard b.count >= 12 else { throw fail("truncated .npy header") }
            headerLength = Int(b[8]) | Int(b[9]) << 8 | Int(b[10]) << 16 | Int(b[11]) << 24; headerStart = 12
        default: throw fail("unsupported .npy version \(major)")
        }
        guard headerStart + headerLength <= b.count else { throw fail("header length \(headerLength) exceeds the file size \(b.count)") }
        let header = String(decoding: b[headerStart..<(headerStart + headerLength)], as: UTF8.self)
        guard let descr = field(header, "descr"), let shapeText = field(header, "shape") else {
            throw fail("malformed .npy header")
        }
        if field(header, "fortran_order") == "True" { throw fail("Fortran-ordered arrays are not supported") }
        let width: Int
        switch descr.trimmingCharacters(in: CharacterSet(charactersIn: "'\"")) {
        case "<i4", "|i4", "=i4": width = 4
        case "<i8", "|i8", "=i8": width = 8
        case let other: throw fail("dtype \(other) is not supported (expected int32 or int64)")
        }
        let dims = shapeText.trimmingCharacters(in: CharacterSet(charactersIn: "()"))
            .split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }.filter { !$0.isEmpty }
        let shape = try dims.map { d -> Int in
            guard let v = Int(d), v >= 0 else { throw fail("bad shape \(shapeText)") }
            return v
        }
        guard shape.count == 2 else { throw fail("tokens have shape \(shape), expected [n, context]") }
        let (count, overflow) = shape[0].multipliedReportingOverflow(by: shape[1])
        let dataStart = headerStart + headerLength
        guard !overflow, count <= (b.count - dataStart) / width, dataStart + count * width == b.count else {
            throw fail("shape \(shape) needs \(overflow ? -1 : count * width) bytes of data, the file holds \(b.count - dataStart)")
        }
        var values = [Int](repeating: 0, count: count)
        let raw = UnsafeRawBufferPointer(rebasing: b[dataStart...])
        if width == 4 {
            for i in 0..<count { values[i] = Int(Int32(littleEndian: raw.loadUnaligned(fromByteOffset: 4 * i, as: Int32.self))) }
        } else {
            for i in 0..<count { values[i] = Int(Int64(littleEndian: raw.loadUnaligned(fromByteOffset: 8 * i, as: Int64.self))) }
        }
        return try make(shape: shape, values: values, path: path)
    }

    /// The raw text of `'key': value` in a .npy header dict (value up to the next top-level comma).
    static func field(_ header: String, _ key: String) -> String? {
        guard let r = header.range(of: "'\(key)':") else { return nil }
        var depth = 0, out = ""
        for ch in header[r.upperBound...] {
            if ch == "(" { depth += 1 }
            if ch == ")" { depth -= 1; if depth == 0 { out.append(ch); break } }
            if depth == 0 && (ch == "," || ch == "}") { break }
            out.append(ch)
        }
        return out.trimmingCharacters(in: .whitespaces)
    }
}
