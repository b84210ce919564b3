import ArgumentParser
import QKTensor

// Parse errors and help are ArgumentParser's; an error from running a command is printed as
// one line whatever it holds (the libraries already say one line; this is the last guard, so a
// file's garbage quoted deep inside a message can never flood the terminal).
do {
    var command = try QKDB.parseAsRoot()
    do {
        try command.run()
    } catch let e where String(reflecting: type(of: e)).hasPrefix("ArgumentParser.") {
        QKDB.exit(withError: e)   // help, exit codes, validation: ArgumentParser's own output
    } catch {
        QKDB.exit(withError: OneLineError(error))
    }
} catch {
    QKDB.exit(withError: error)
}

/// An error's message on one line: line breaks and control characters escaped, at most 2,000
/// characters.
struct OneLineError: Error, CustomStringConvertible {
    let description: String
    init(_ error: Error) {
        var text = ""
        for scalar in "\(error)".unicodeScalars {
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
