import QKTensor

/// Errors must be one line, but GGUF keys, tensor names and strings come from the file and a
/// corrupt file can put any byte in them. These escape control characters and shorten long
/// names, so the message stays one readable line whatever the file holds.
extension String {
    var escapedForMessage: String {
        var out = ""
        for scalar in unicodeScalars.prefix(80) {
            switch scalar {
            case "\n": out += "\\n"
            case "\r": out += "\\r"
            case "\t": out += "\\t"
            default:
                if scalar.value < 0x20 || scalar.value == 0x7F || (0x80..<0xA0).contains(scalar.value)
                    || scalar.value == 0x2028 || scalar.value == 0x2029 || scalar.value == 0x85 {
                    out += "\\u{\(String(scalar.value, radix: 16))}"
                } else {
                    out.unicodeScalars.append(scalar)
                }
            }
        }
        return unicodeScalars.count > 80 ? out + "…" : out
    }
}

/// Runs `body`, rewriting any error it throws into one line (see `escapedForMessage`).
func oneLineErrors<T>(_ body: () throws -> T) throws -> T {
    do { return try body() } catch let e as TensorFileError {
        throw TensorFileError(file: e.file, tensor: e.tensor?.escapedForMessage, message: e.message.escapedForMessageKeepingLength)
    } catch let e as ModelError {
        throw ModelError(e.message.escapedForMessageKeepingLength)
    }
}

extension String {
    /// Control characters escaped, length kept (for whole messages, which may be long).
    var escapedForMessageKeepingLength: String {
        guard unicodeScalars.contains(where: { $0.value < 0x20 || $0.value == 0x7F || (0x80..<0xA0).contains($0.value) || $0.value == 0x2028 || $0.value == 0x2029 }) else { return self }
        return unicodeScalars.map { s -> String in
            if s.value < 0x20 || s.value == 0x7F || (0x80..<0xA0).contains(s.value) || s.value == 0x2028 || s.value == 0x2029 {
                return s == "\n" ? "\\n" : "\\u{\(String(s.value, radix: 16))}"
            }
            return String(s)
        }.joined()
    }
}
