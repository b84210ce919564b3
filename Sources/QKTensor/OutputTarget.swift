#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import Foundation

/// The one rule every qkdb writer follows for a path the user named: it replaces only what it can
/// recognise as its own earlier output (or nothing at all), unless `--force`; and it builds its
/// output under a hidden temporary name beside the target, renamed into place only when complete.
/// So a mistyped `--out` can never wipe a folder of someone's files, a store, or any other file,
/// and a failure or kill leaves the old output (or no output), never a half-written one.
public struct OutputTarget: Sendable {
    /// A file (CSV, safetensors) or a directory (report, dashboard) of output.
    public enum Shape: Sendable { case file, directory }

    public let path: String
    public let shape: Shape
    /// What the writer makes, for messages ("CSV export", "report").
    public let what: String
    public let force: Bool
    /// Says whether the file or directory at a path is this writer's own earlier output.
    public let recognises: @Sendable (String) -> Bool

    public init(path: String, shape: Shape, what: String, force: Bool, recognises: @escaping @Sendable (String) -> Bool) {
        self.path = path
        self.shape = shape
        self.what = what
        self.force = force
        self.recognises = recognises
    }

    /// Throws one line when `path` holds something this writer must not replace.
    public func check() throws {
        var st = stat()
        guard lstat(path, &st) == 0 else { return }   // nothing there: anything may be written
        if force { return }
        let isDirectory = st.st_mode & S_IFMT == S_IFDIR
        if recognises(path) { return }
        if isDirectory && shape == .directory && ((try? FileManager.default.contentsOfDirectory(atPath: path))?.isEmpty ?? false) { return }
        let found: String
        if isDirectory { found = "a directory" }
        else if OutputTarget.isSQLite(path) { found = "an SQLite database (a store?)" }
        else { found = "a file qkdb cannot recognise as an earlier \(what)" }
        throw OutputError("\(path): already exists and is \(found); refusing to replace it (choose another path, or pass --force)")
    }

    /// The hidden sibling a writer builds its output under (same directory, so the rename is atomic).
    public var temporaryPath: String {
        let url = URL(fileURLWithPath: path)
        return url.deletingLastPathComponent().appendingPathComponent(".\(url.lastPathComponent).partial-\(getpid())").path
    }

    /// Moves the finished output at `temporary` to `path`. A file replaces the old one in a single
    /// rename; a directory first moves the old one aside, so at every moment `path` holds either
    /// the complete old output or the complete new one.
    public func commit(from temporary: String) throws {
        var st = stat()
        let exists = lstat(path, &st) == 0
        let oldIsDirectory = exists && st.st_mode & S_IFMT == S_IFDIR
        if !exists || (shape == .file && !oldIsDirectory) {
            guard rename(temporary, path) == 0 else { throw renameError(temporary) }
            return
        }
        let aside = URL(fileURLWithPath: temporaryPath).deletingLastPathComponent()
            .appendingPathComponent(".\(URL(fileURLWithPath: path).lastPathComponent).old-\(getpid())").path
        guard rename(path, aside) == 0 else { throw renameError(path) }
        guard rename(temporary, path) == 0 else {
            let e = renameError(temporary)
            _ = rename(aside, path)   // put the old output back
            throw e
        }
        try? FileManager.default.removeItem(atPath: aside)
    }

    /// Builds a directory output: checks the target, lets `body` fill a fresh temporary directory,
    /// marks it as this writer's (`markerName`, so a later run may replace it) and commits it.
    /// On any error the temporary directory is removed and `path` is untouched.
    public func writeDirectory<T>(_ body: (URL) throws -> T) throws -> T {
        precondition(shape == .directory)
        try check()
        let tmp = URL(fileURLWithPath: temporaryPath)
        let fm = FileManager.default
        try? fm.removeItem(at: tmp)
        do {
            try fm.createDirectory(at: tmp, withIntermediateDirectories: true)
            let result = try body(tmp)
            try Data((OutputTarget.markerPrefix + what + "\n").utf8).write(to: tmp.appendingPathComponent(OutputTarget.markerName))
            try commit(from: tmp.path)
            return result
        } catch {
            try? fm.removeItem(at: tmp)
            throw error
        }
    }

    /// The file a directory output carries to say which writer made it.
    public static let markerName = ".qkdb-output"
    static let markerPrefix = "written by qkdb: "

    /// Whether `dir` carries the marker of a `what` output (see `writeDirectory`).
    public static func isMarked(_ dir: String, what: String) -> Bool {
        let bytes = firstBytes(of: dir + "/" + markerName, count: 256)
        return String(decoding: bytes, as: UTF8.self) == markerPrefix + what + "\n"
    }

    private func renameError(_ from: String) -> OutputError {
        OutputError("\(path): cannot move the finished \(what) into place (\(String(cString: strerror(errno))))")
    }

    /// Whether the file starts with SQLite's magic string.
    public static func isSQLite(_ path: String) -> Bool {
        firstBytes(of: path, count: 16) == Array("SQLite format 3\0".utf8)
    }

    /// Up to `count` bytes from the start of a regular file (empty for anything else).
    public static func firstBytes(of path: String, count: Int) -> [UInt8] {
        let fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK)
        guard fd >= 0 else { return [] }
        defer { close(fd) }
        var st = stat()
        guard fstat(fd, &st) == 0, st.st_mode & S_IFMT == S_IFREG else { return [] }
        var bytes = [UInt8](repeating: 0, count: count)
        let n = bytes.withUnsafeMutableBytes { pread(fd, $0.baseAddress, count, 0) }
        return n > 0 ? Array(bytes[0..<n]) : []
    }

    /// Whether `path` is a safetensors file whose `__metadata__` says `format` starts with `prefix`
    /// (how harvests and checkpoints mark themselves as qkdb's output). Reads only the header.
    public static func isSafeTensors(_ path: String, formatPrefix prefix: String) -> Bool {
        let head = firstBytes(of: path, count: 8)
        guard head.count == 8 else { return false }
        let length = head.reversed().reduce(UInt64(0)) { $0 << 8 | UInt64($1) }
        guard length > 0, length < 1 << 24 else { return false }
        let bytes = firstBytes(of: path, count: 8 + Int(length))
        guard bytes.count == 8 + Int(length),
              let json = try? JSONSerialization.jsonObject(with: Data(bytes[8...])) as? [String: Any],
              let meta = json["__metadata__"] as? [String: Any], let format = meta["format"] as? String else { return false }
        return format.hasPrefix(prefix)
    }
}

/// A refused or failed output, as one line naming the path.
public struct OutputError: Error, CustomStringConvertible, Sendable {
    public let message: String
    public init(_ message: String) { self.message = message }
    public var description: String { message }
}
