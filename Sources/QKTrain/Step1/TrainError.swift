/// Errors of the step-1 trainer. Each message is one line naming the file, run, tensor or
/// option at fault, so the CLI can print it as is.
public struct TrainError: Error, CustomStringConvertible, Sendable {
    public let message: String
    public init(_ message: String) { self.message = message }
    public var description: String { message }
}
