#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import Foundation

/// What a model is by content, cheaply: a hash of its config (`config.json` whole, or a GGUF
/// file's first 64 KiB, where its metadata lives) and a weights fingerprint (each weights file's
/// name and size plus 16 blocks of 4 KiB spread over it, header block included). Reading ~70 KiB
/// per file tells a copied or moved model from one with other weights in milliseconds, where
/// hashing gigabytes would not be; a change that avoids every sampled block goes unseen, which
/// is accepted: this guards against the wrong folder, not against tampering.
public enum ModelFingerprint {
    /// `config:<16 hex>/weights:<16 hex>` of a model folder or `.gguf` file.
    public static func of(path: String) throws -> String {
        var isDirectory: ObjCBool = false
        guard FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory) else {
            throw ModelError("\(path): model folder does not exist")
        }
        var config = Hash(), weights = Hash()
        if isDirectory.boolValue {
            let names = (try? FileManager.default.contentsOfDirectory(atPath: path)) ?? []
            if let c = FileManager.default.contents(atPath: path + "/config.json") { c.withUnsafeBytes { config.add($0) } }
            for name in names.sorted() where name.hasSuffix(".safetensors") || name.hasSuffix(".gguf") || name.hasSuffix(".bin") {
                try sample(path + "/" + name, name: name, into: &weights)
            }
        } else {
            try sample(path, name: URL(fileURLWithPath: path).lastPathComponent, into: &weights)
            try read(path, offset: 0, count: 65536) { config.add($0) }
        }
        return String(format: "config:%016llx/weights:%016llx", config.value, weights.value)
    }

    static func sample(_ file: String, name: String, into h: inout Hash) throws {
        var st = stat()
        guard stat(file, &st) == 0 else { throw ModelError("\(file): cannot be read") }
        let size = Int(st.st_size), block = 4096, blocks = 16
        Data(name.utf8).withUnsafeBytes { h.add($0) }
        withUnsafeBytes(of: UInt64(size).littleEndian) { h.add($0) }
        for i in 0..<blocks {
            // Evenly spaced, the first at the start (the header) and the last ending at the end.
            let offset = size <= block ? 0 : (i == blocks - 1 ? size - block : (size - block) / (blocks - 1) * i)
            try read(file, offset: offset, count: min(block, size)) { h.add($0) }
        }
    }

    static func read(_ file: String, offset: Int, count: Int, _ body: (UnsafeRawBufferPointer) -> Void) throws {
        let fd = open(file, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { throw ModelError("\(file): cannot be read") }
        defer { close(fd) }
        var bytes = [UInt8](repeating: 0, count: count)
        let n = bytes.withUnsafeMutableBytes { pread(fd, $0.baseAddress, count, off_t(offset)) }
        bytes.withUnsafeBytes { body(UnsafeRawBufferPointer(rebasing: $0[0..<max(0, n)])) }
    }

    /// FNV-1a, 64-bit: plenty for telling a few files apart (no adversary, no speed concern).
    struct Hash {
        var value: UInt64 = 0xcbf2_9ce4_8422_2325
        mutating func add(_ bytes: UnsafeRawBufferPointer) {
            for b in bytes { value = (value ^ UInt64(b)) &* 0x0000_0100_0000_01b3 }
        }
    }
}
