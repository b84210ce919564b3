#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import Foundation

/// A read-only memory-mapped file. The mapping lives as long as the object.
public final class MappedFile: @unchecked Sendable {
    public let path: String
    public let size: Int
    public let bytes: UnsafeRawBufferPointer
    private let base: UnsafeMutableRawPointer?

    public init(path: String) throws {
        self.path = path
        let fd = open(path, O_RDONLY)
        guard fd >= 0 else {
            throw TensorFileError(file: path, message: "cannot open (\(String(cString: strerror(errno))))")
        }
        defer { close(fd) }
        var st = stat()
        guard fstat(fd, &st) == 0 else { throw TensorFileError(file: path, message: "cannot stat") }
        if (st.st_mode & S_IFMT) == S_IFDIR { throw TensorFileError(file: path, message: "is a directory, not a file") }
        size = Int(st.st_size)
        if size == 0 {
            base = nil
            bytes = UnsafeRawBufferPointer(start: nil, count: 0)
            return
        }
        guard let p = mmap(nil, size, PROT_READ, MAP_PRIVATE, fd, 0), p != MAP_FAILED else {
            throw TensorFileError(file: path, message: "cannot map \(size) bytes")
        }
        base = p
        bytes = UnsafeRawBufferPointer(start: p, count: size)
    }

    deinit { if let base { munmap(base, size) } }
}

/// An error reading or writing a tensor file; always names the file (and tensor, when known).
public struct TensorFileError: Error, CustomStringConvertible, Sendable {
    public let file: String
    public let tensor: String?
    public let message: String
    public init(file: String, tensor: String? = nil, message: String) {
        self.file = file; self.tensor = tensor; self.message = message
    }
    public var description: String {
        if let tensor { return "\(file): tensor '\(tensor)': \(message)" }
        return "\(file): \(message)"
    }
}
