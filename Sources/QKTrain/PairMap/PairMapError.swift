/// Errors of step 2 (mask training and statistics). Every message names the sequence, tensor or
/// feature at fault, on one line, so the CLI can print it as is.
public struct PairMapError: Error, CustomStringConvertible, Sendable {
    public let message: String
    public init(_ message: String) { self.message = message }
    public var description: String { message }
}
