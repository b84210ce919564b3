/// GPT-2's reversible spelling of bytes as printable characters.
///
/// Byte-level BPE vocabularies are written in this alphabet so that every token is a visible
/// string: the 188 bytes that are already printable Latin-1 characters (`!`…`~`, `¡`…`¬`,
/// `®`…`ÿ`) stand for themselves, and the other 68 (controls, space, soft hyphen, …) are moved,
/// in byte order, to U+0100 onwards — which is why a leading space shows up as `Ġ` (U+0120).
enum ByteLevelAlphabet {
    /// The character that spells each byte.
    static let scalarOfByte: [Unicode.Scalar] = {
        var table = [Unicode.Scalar](repeating: " ", count: 256)
        var next: UInt32 = 256
        for byte in 0..<256 {
            if (33...126).contains(byte) || (161...172).contains(byte) || (174...255).contains(byte) {
                table[byte] = Unicode.Scalar(UInt8(byte))
            } else {
                table[byte] = Unicode.Scalar(next)!
                next += 1
            }
        }
        return table
    }()

    /// The byte each alphabet character spells, indexed by scalar value (< 324); -1 elsewhere.
    static let byteOfScalar: [Int16] = {
        var table = [Int16](repeating: -1, count: 324)
        for (byte, scalar) in scalarOfByte.enumerated() { table[Int(scalar.value)] = Int16(byte) }
        return table
    }()

    @inline(__always)
    static func byte(of scalar: Unicode.Scalar) -> UInt8? {
        let v = Int(scalar.value)
        guard v < byteOfScalar.count, byteOfScalar[v] >= 0 else { return nil }
        return UInt8(byteOfScalar[v])
    }

    /// The bytes a token spells, or nil if it uses a character outside the alphabet.
    static func bytes(ofToken token: String) -> [UInt8]? {
        var out: [UInt8] = []
        out.reserveCapacity(token.unicodeScalars.count)
        for s in token.unicodeScalars {
            guard let b = byte(of: s) else { return nil }
            out.append(b)
        }
        return out
    }

    /// A byte string spelled in the alphabet (how a vocabulary writes it).
    static func spell(_ bytes: some Sequence<UInt8>) -> String {
        var view = String.UnicodeScalarView()
        for b in bytes { view.append(scalarOfByte[Int(b)]) }
        return String(view)
    }
}
