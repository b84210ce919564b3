import Foundation

/// Writes CSV (RFC 4180) to a file through a buffer, into a temporary name that is renamed into
/// place only by `finish()`; an error or a kill before that leaves no partial file at `path`.
public final class CSVWriter {
    public let path: String
    private let temporary: String
    private let handle: FileHandle
    private var buffer: [UInt8] = []
    private var finished = false

    public init(path: String) throws {
        self.path = path
        temporary = path + ".partial-\(ProcessInfo.processInfo.processIdentifier)"
        guard FileManager.default.createFile(atPath: temporary, contents: nil), let h = FileHandle(forWritingAtPath: temporary) else {
            throw StoreError("\(path): cannot create the output file")
        }
        handle = h
        buffer.reserveCapacity(1 << 20)
    }

    deinit {
        if !finished {
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
    /// Numbers never need quoting; nil becomes an empty field.
    public func numericRow(ints: [Int], floats: [Float?]) throws {
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
        try? handle.close()
        do {
            if FileManager.default.fileExists(atPath: path) { try FileManager.default.removeItem(atPath: path) }
            try FileManager.default.moveItem(atPath: temporary, toPath: path)
        } catch {
            throw StoreError("\(path): cannot move the finished file into place (\(error.localizedDescription))")
        }
        finished = true
    }
}

/// How numbers appear in exports and query output: the shortest text that reads back to the same value.
public enum NumberText {
    public static func float(_ x: Float?) -> String { x.map { "\($0)" } ?? "" }
    public static func double(_ x: Double?) -> String { x.map { "\($0)" } ?? "" }
}
