import Foundation

/// Numbers read from JSON headers and configs (safetensors, config.json), taken only when they
/// mean what they look like: Foundation hands `true` over as the number 1, and an integer beyond
/// 64 bits as a decimal whose `intValue` silently wraps (2^64 + 1 reads as 1).
public enum JSONNumber {
    /// An integer exactly as written: not a boolean, no fraction, and within ±2^53 (every
    /// size and count a file can hold; beyond it a Double no longer says which integer it was).
    public static func exactInt(_ value: Any?) -> Int? {
        guard let n = value as? NSNumber, !isBoolean(n) else { return nil }
        let d = n.doubleValue
        guard d.isFinite, d == d.rounded(), abs(d) <= 9_007_199_254_740_992 else { return nil }
        return Int(d)
    }

    /// A finite number (not a boolean).
    public static func finite(_ value: Any?) -> Double? {
        guard let n = value as? NSNumber, !isBoolean(n), n.doubleValue.isFinite else { return nil }
        return n.doubleValue
    }

    /// JSON `true`/`false` (Swift's `is Bool` also says yes for the numbers 0 and 1, so the
    /// boxed type decides: Foundation keeps booleans as a char-typed number).
    static func isBoolean(_ n: NSNumber) -> Bool { String(cString: n.objCType) == "c" }

    /// `value` as it may appear in a one-line error: quoted, at most `limit` characters, with
    /// line breaks escaped, so a corrupt file's garbage cannot flood the terminal.
    public static func quoted(_ value: Any, limit: Int = 60) -> String {
        var s = "\(value)".replacingOccurrences(of: "\n", with: "\\n").replacingOccurrences(of: "\r", with: "\\r")
        if s.count > limit { s = String(s.prefix(limit)) + "… (\(s.utf8.count) bytes)" }
        return "'\(s)'"
    }
}
