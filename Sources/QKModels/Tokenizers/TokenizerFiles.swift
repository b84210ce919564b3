import Foundation

/// Reading tokenizer files with errors that name the file and what is wrong with it.
enum TokenizerFiles {
    static func exists(_ path: String) -> Bool {
        var isDirectory: ObjCBool = false
        return FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory) && !isDirectory.boolValue
    }

    static func data(_ path: String, what: String) throws -> Data {
        guard exists(path) else { throw ModelError("\(path): missing (\(what))") }
        do {
            return try Data(contentsOf: URL(fileURLWithPath: path))
        } catch {
            throw ModelError("\(path): cannot be read (\(what))")
        }
    }

    static func text(_ path: String, what: String) throws -> String {
        let bytes = try data(path, what: what)
        guard let text = String(data: bytes, encoding: .utf8) else {
            throw ModelError("\(path): not valid UTF-8 (\(what))")
        }
        return text
    }

    static func json(_ path: String, what: String) throws -> Any {
        let bytes = try data(path, what: what)
        do {
            return try JSONSerialization.jsonObject(with: bytes, options: [.fragmentsAllowed])
        } catch {
            throw ModelError("\(path): not valid JSON (\(what))")
        }
    }

    /// Parses "left right" merge lines (merges.txt, tokenizer.json's older string form, GGUF).
    static func mergePair(_ line: Substring, number: Int, source: String) throws -> (String, String) {
        let parts = line.split(separator: " ", omittingEmptySubsequences: false)
        guard parts.count == 2, !parts[0].isEmpty, !parts[1].isEmpty else {
            throw ModelError("\(source): merge \(number) \(String(line).debugDescription) is not two tokens separated by one space")
        }
        return (String(parts[0]), String(parts[1]))
    }

    /// A token name from a config value, which is either a string or `{"content": string, …}`.
    static func tokenName(_ value: Any?) -> String? {
        if let s = value as? String { return s }
        if let d = value as? [String: Any], let s = d["content"] as? String { return s }
        return nil
    }
}
