#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import Foundation
import QKTensor

/// Writes a `.safetensors` file whose tensors all have a leading sequence axis, batch by batch,
/// without holding the whole harvest in memory. The layout (and so the header) is fixed up
/// front from the shapes; each batch's slice of each tensor is written at its final offset.
/// Everything goes to a temporary file beside the output that is renamed into place only by
/// `finish()`; `abandon()` (or dropping the writer unfinished) removes it, so a failed harvest
/// never leaves a partial output file. An existing file at `path` is replaced only when it is an
/// earlier harvest (its `__metadata__` says `format: qkdb-harvest-1`) or with `force`.
public final class HarvestWriter {
    /// What a harvest's `__metadata__` says it is, so a later harvest knows it may replace it.
    public static let format = "qkdb-harvest-1"

    public struct Column {
        public let name: String
        public let dtype: DType
        /// Full shape; `shape[0]` is the number of sequences.
        public let shape: [Int]
        var rowBytes: Int { shape.dropFirst().reduce(1, *) * dtype.byteSize }
        public init(name: String, dtype: DType, shape: [Int]) { self.name = name; self.dtype = dtype; self.shape = shape }
    }

    public let path: String
    let columns: [Column]
    private let offsets: [Int]
    private let target: OutputTarget
    private let temporaryPath: String
    private var fd: Int32
    private var finished = false

    public init(path: String, columns: [Column], force: Bool = false) throws {
        self.path = path
        self.columns = columns
        target = HarvestWriter.outputTarget(path, force: force)
        try target.check()
        var parts: [String] = ["\"__metadata__\":{\"format\":\"\(HarvestWriter.format)\"}"], offsets: [Int] = [], off = 0
        for c in columns {
            let bytes = c.shape.reduce(1, *) * c.dtype.byteSize
            parts.append("\"\(c.name)\":{\"dtype\":\"\(c.dtype.rawValue)\",\"shape\":[\(c.shape.map(String.init).joined(separator: ","))],\"data_offsets\":[\(off),\(off + bytes)]}")
            offsets.append(off)
            off += bytes
        }
        var header = Data("{\(parts.joined(separator: ","))}".utf8)
        while header.count % 8 != 0 { header.append(0x20) }
        let dataStart = 8 + header.count
        self.offsets = offsets.map { $0 + dataStart }
        temporaryPath = target.temporaryPath
        fd = open(temporaryPath, O_WRONLY | O_CREAT | O_TRUNC, 0o644)
        guard fd >= 0 else {
            throw ModelError("\(path): cannot create the output file (\(String(cString: strerror(errno))))")
        }
        var prefix = Data()
        var len = UInt64(header.count).littleEndian
        prefix.append(Data(bytes: &len, count: 8))
        prefix.append(header)
        do {
            guard ftruncate(fd, off_t(dataStart + off)) == 0 else {
                throw ModelError("\(path): cannot size the output file to \(dataStart + off) bytes (\(String(cString: strerror(errno))))")
            }
            try write(prefix.withUnsafeBytes { $0 }, at: 0)
        } catch {
            abandon()
            throw error
        }
    }

    deinit { if !finished { abandon() } }

    /// Where a harvest may be written (`check()` it before expensive work, to fail early).
    public static func outputTarget(_ path: String, force: Bool) -> OutputTarget {
        OutputTarget(path: path, shape: .file, what: "harvest", force: force) {
            OutputTarget.isSafeTensors($0, formatPrefix: "qkdb-harvest")
        }
    }

    /// Writes sequences `[first, first + n)` of column `index` from raw bytes.
    public func write(column index: Int, firstSequence first: Int, bytes: UnsafeRawBufferPointer) throws {
        let c = columns[index]
        guard bytes.count % c.rowBytes == 0, first * c.rowBytes + bytes.count <= c.shape.reduce(1, *) * c.dtype.byteSize else {
            throw ModelError("\(path): internal error: \(c.name) slice of \(bytes.count) bytes at sequence \(first) does not fit")
        }
        try write(bytes, at: offsets[index] + first * c.rowBytes)
    }

    public func write(_ name: String, firstSequence first: Int, floats: [Float]) throws {
        guard let i = columns.firstIndex(where: { $0.name == name }) else { return }
        try floats.withUnsafeBytes { try write(column: i, firstSequence: first, bytes: $0) }
    }

    public func write(_ name: String, firstSequence first: Int, int32 values: [Int32]) throws {
        guard let i = columns.firstIndex(where: { $0.name == name }) else { return }
        try values.withUnsafeBytes { try write(column: i, firstSequence: first, bytes: $0) }
    }

    private func write(_ bytes: UnsafeRawBufferPointer, at offset: Int) throws {
        var done = 0
        while done < bytes.count {
            let n = pwrite(fd, bytes.baseAddress! + done, bytes.count - done, off_t(offset + done))
            if n < 0 && errno == EINTR { continue }
            guard n > 0 else { throw ModelError("\(path): write failed (\(String(cString: strerror(errno))))") }
            done += n
        }
    }

    /// Closes the file and moves it into place.
    public func finish() throws {
        guard !finished else { return }
        guard close(fd) == 0 else { abandon(); throw ModelError("\(path): closing the output failed") }
        fd = -1
        do { try target.commit(from: temporaryPath) } catch {
            abandon()
            throw error
        }
        finished = true
    }

    /// Deletes the temporary file.
    public func abandon() {
        if fd >= 0 { close(fd); fd = -1 }
        unlink(temporaryPath)
        finished = true
    }
}
