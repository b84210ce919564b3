import Foundation
import QKTensor

/// Writes CSV (RFC 4180) to a file through a buffer, into a temporary name that is renamed into
/// place only by `finish()`; an error or a kill before that leaves no partial file at `path`.
/// The path `-` streams to standard output instead. An existing file is replaced only when it is
/// an earlier qkdb CSV export (or with `force`), see `OutputTarget`.
public final class CSVWriter {
    public let path: String
    /// nil when streaming to standard output.
    private let target: OutputTarget?
    private let temporary: String
    private let handle: FileHandle
    private var buffer: [UInt8] = []
    private var finished = false

    /// Whether the file at `path` starts with one of `headers` (then possibly more columns): how
    /// an earlier export of ours is told from someone else's file.
    public static func starts(_ path: String, withOneOf headers: [[String]]) -> Bool {
        let head = OutputTarget.firstBytes(of: path, count: 4096)
        let line = String(decoding: head.prefix { $0 != UInt8(ascii: "\n") }, as: UTF8.self)
        return headers.contains { h in
            let text = h.map(escape).joined(separator: ",")
            return line == text || line.hasPrefix(text + ",")
        }
    }

    /// `recognisedHeaders`: the header lines of the files this writer may replace without `force`.
    public init(path: String, force: Bool = false, recognisedHeaders: [[String]]) throws {
        self.path = path
        buffer.reserveCapacity(1 << 20)
        if path == "-" {
            target = nil
            temporary = ""
            handle = FileHandle.standardOutput
            return
        }
        let target = OutputTarget(path: path, shape: .file, what: "CSV export", force: force, recognises: { CSVWriter.starts($0, withOneOf: recognisedHeaders) })
        do { try target.check() } catch let e as OutputError { throw StoreError(e.message) }
        self.target = target
        temporary = target.temporaryPath
        guard FileManager.default.createFile(atPath: temporary, contents: nil), let h = FileHandle(forWritingAtPath: temporary) else {
            throw StoreError("\(path): cannot create the output file")
        }
        handle = h
    }

    deinit {
        if !finished && target != nil {
            try? handle.close()
            try? FileManager.default.removeItem(atPath: temporary)
        }
    }

    /// A field as CSV writes it: quoted (with doubled quotes) only when it holds a comma, quote or line break.
    public static func escape(_ field: String) -> String {
        guard field.contains(where: { $0 == "," || $0 == "\"" || $0 == "\n" || $0 == "\r" }) else { return field }
        return "\"" + field.replacingOccurrences(of: "\"", with: "\"\"") + "\""
    }

    public func row(_ fields: [String]) throws {
        var first = true
        for f in fields {
            if !first { buffer.append(UInt8(ascii: ",")) }
            first = false
            buffer.append(contentsOf: Self.escape(f).utf8)
        }
        buffer.append(UInt8(ascii: "\n"))
        if buffer.count >= 1 << 20 { try flush() }
    }

    /// Appends one row of numbers without building intermediate strings (the pairs export's hot path).
    /// Numbers never need quoting; nil becomes an empty field. `escapedTexts` follow, already
    /// passed through `escape` (the caller escapes each distinct text once).
    public func numericRow(ints: [Int], floats: [Float?], escapedTexts: [String] = []) throws {
        var first = true
        for i in ints {
            if !first { buffer.append(UInt8(ascii: ",")) }
            first = false
            appendInt(i)
        }
        for f in floats {
            if !first { buffer.append(UInt8(ascii: ",")) }
            first = false
            if let f { buffer.append(contentsOf: f.description.utf8) }
        }
        for t in escapedTexts {
            if !first { buffer.append(UInt8(ascii: ",")) }
            first = false
            buffer.append(contentsOf: t.utf8)
        }
        buffer.append(UInt8(ascii: "\n"))
        if buffer.count >= 1 << 20 { try flush() }
    }

    private func appendInt(_ value: Int) {
        if value < 0 { buffer.append(UInt8(ascii: "-")) }
        var v = value.magnitude
        var digits: (UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8) =
            (0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0)
        var n = 0
        withUnsafeMutableBytes(of: &digits) { d in
            repeat { d[n] = UInt8(ascii: "0") + UInt8(v % 10); v /= 10; n += 1 } while v > 0
            for i in stride(from: n - 1, through: 0, by: -1) { buffer.append(d[i]) }
        }
    }

    private func flush() throws {
        do { try handle.write(contentsOf: buffer) } catch { throw StoreError("\(path): write failed (\(error.localizedDescription))") }
        buffer.removeAll(keepingCapacity: true)
    }

    public func finish() throws {
        try flush()
        guard let target else { finished = true; return }
        try? handle.close()
        do { try target.commit(from: temporary) } catch let e as OutputError { throw StoreError(e.message) }
        finished = true
    }
}

/// How numbers appear in exports and query output: the shortest text that reads back to the same value.
public enum NumberText {
    public static func float(_ x: Float?) -> String { x.map { "\($0)" } ?? "" }
    public static func double(_ x: Double?) -> String { x.map { "\($0)" } ?? "" }
    /// Four significant figures, for tables a person reads ("0.7339", "5.228e-05", "28171" stays
    /// an integer when it is one below 10^6).
    public static func short(_ x: Double) -> String {
        guard x.isFinite else { return "\(x)" }
        if x == x.rounded(), abs(x) < 1e6 { return String(Int(x)) }
        return String(format: "%.4g", x)
    }
}
