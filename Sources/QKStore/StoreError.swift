import Foundation

/// Every failure the store reports. The description is one line that names the file, run,
/// chunk, feature or head at fault, so the command line can print it as is.
public struct StoreError: Error, CustomStringConvertible, Sendable {
    public let message: String
    public init(_ message: String) { self.message = message }
    public var description: String { message }
}
