import Foundation

/// Reads a text corpus as a list of documents.
///
/// * `.txt`: documents are separated by blank lines (a line holding only whitespace counts as
///   blank); line breaks inside a document are kept.
/// * `.jsonl`: one JSON object per line; the document is its string field `text`. Blank lines
///   are skipped; a line that is not an object with a string `text` is an error naming the line.
/// * a directory: every `.txt` and `.jsonl` file below it, recursively, in path order (so the
///   corpus and its held-out split do not depend on the file system's listing order).
public enum DocumentReader {
    public static func documents(at path: String) throws -> [String] {
        var isDirectory: ObjCBool = false
        guard FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory) else {
            throw ModelError("\(path): corpus path does not exist")
        }
        if isDirectory.boolValue {
            return try files(in: path).flatMap { try documents(inFile: $0) }
        }
        return try documents(inFile: path)
    }

    /// The corpus files below a directory, sorted by path.
    public static func files(in directory: String) throws -> [String] {
        guard let walker = FileManager.default.enumerator(atPath: directory) else {
            throw ModelError("\(directory): cannot list the corpus directory")
        }
        var found: [String] = []
        while let rel = walker.nextObject() as? String {
            let ext = (rel as NSString).pathExtension.lowercased()
            if ext == "txt" || ext == "jsonl" { found.append((directory as NSString).appendingPathComponent(rel)) }
        }
        guard !found.isEmpty else { throw ModelError("\(directory): no .txt or .jsonl files in the corpus directory") }
        return found.sorted()
    }

    public static func documents(inFile path: String) throws -> [String] {
        let ext = (path as NSString).pathExtension.lowercased()
        guard ext == "txt" || ext == "jsonl" else {
            throw ModelError("\(path): unsupported corpus file (expected .txt, .jsonl, or a directory of them)")
        }
        guard FileManager.default.isReadableFile(atPath: path), let data = FileManager.default.contents(atPath: path) else {
            throw ModelError("\(path): cannot read the corpus file")
        }
        let text = String(decoding: data, as: UTF8.self)
        return ext == "txt" ? splitOnBlankLines(text) : try jsonlTexts(text, path: path)
    }

    /// Paragraphs of a plain-text file.
    static func splitOnBlankLines(_ text: String) -> [String] {
        var docs: [String] = [], current: [Substring] = []
        func flush() {
            if !current.isEmpty { docs.append(current.joined(separator: "\n")); current = [] }
        }
        // Splitting on `isNewline` treats "\r\n" (one Character in Swift) like "\n".
        for line in text.split(omittingEmptySubsequences: false, whereSeparator: \.isNewline) {
            if line.allSatisfy({ $0.isWhitespace }) { flush() } else { current.append(line) }
        }
        flush()
        return docs
    }

    static func jsonlTexts(_ text: String, path: String) throws -> [String] {
        var docs: [String] = []
        for (i, line) in text.split(omittingEmptySubsequences: false, whereSeparator: \.isNewline).enumerated() {
            if line.allSatisfy({ $0.isWhitespace }) { continue }
            guard let obj = try? JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any] else {
                throw ModelError("\(path): line \(i + 1) is not a JSON object")
            }
            guard let t = obj["text"] as? String else {
                throw ModelError("\(path): line \(i + 1) has no string field \"text\"")
            }
            docs.append(t)
        }
        return docs
    }
}
