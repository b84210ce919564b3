import Foundation
import XCTest
import QKTensor
@testable import QKModels

/// Locations of the committed fixtures and bundled models, found from this file's path.
enum Fixtures {
    static let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
    static var models: URL { root.appendingPathComponent("Tests/Fixtures/models") }
    static func path(_ rel: String) -> String { models.appendingPathComponent(rel).path }
    static var miniLM: String { root.appendingPathComponent("models/all-MiniLM-L6-v2").path }
}
