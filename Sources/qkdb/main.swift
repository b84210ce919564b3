import Foundation
import ArgumentParser
import QKTensor

// Help and --version are ArgumentParser's own output. Every error — a bad argument, a failed
// validation, a failed command — is printed as one line, whatever it holds (the libraries already
// say one line; this is the last guard, so a file's garbage quoted deep inside a message can never
// flood the terminal), followed for argument errors by where the usage is.
do {
    var command = try QKDB.parseAsRoot()
    do {
        try command.run()
    } catch {
        exitOneLine(error)
    }
} catch {
    exitOneLine(error)
}

/// Exits with ArgumentParser's output for help and clean exits, else one line on stderr.
func exitOneLine(_ error: Error) -> Never {
    let code = QKDB.exitCode(for: error)
    let isParserError = String(reflecting: type(of: error)).hasPrefix("ArgumentParser.")
    if code == .success || (isParserError && QKDB.message(for: error).isEmpty) { QKDB.exit(withError: error) }
    var line = "Error: " + OneLineError(isParserError ? QKDB.message(for: error) : "\(error)").description
    if isParserError, let name = CommandLine.arguments.dropFirst().first, QKDB.allCommands.contains(where: { $0._commandName == name }) {
        line += " (see 'qkdb \(name) --help')"
    } else if isParserError {
        line += " (see 'qkdb --help')"
    }
    FileHandle.standardError.write(Data((line + "\n").utf8))
    exit(code.rawValue)
}

/// An error's message on one line: line breaks and control characters escaped, at most 2,000
/// characters.
struct OneLineError: Error, CustomStringConvertible {
    let description: String
    init(_ error: Error) { self.init("\(error)") }
    init(_ message: String) {
        var text = ""
        for scalar in message.unicodeScalars {
            switch scalar {
            case "\n": text += "\\n"
            case "\r": text += "\\r"
            case "\t": text += " "
            default: if scalar.value < 0x20 || scalar.value == 0x7F { text += "\\u{\(String(scalar.value, radix: 16))}" } else { text.unicodeScalars.append(scalar) }
            }
        }
        description = text.count > 2000 ? String(text.prefix(2000)) + "… (\(text.utf8.count) bytes)" : text
    }
}
