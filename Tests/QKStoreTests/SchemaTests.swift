import Foundation
import XCTest
import GRDB
@testable import QKStore

/// The code applies exactly `schema/store.sql`.
final class SchemaTests: XCTestCase {
    func testEmbeddedSchemaIsTheSQLFileVerbatim() throws {
        let file = try String(contentsOf: StoreTestSupport.root.appendingPathComponent("schema/store.sql"), encoding: .utf8)
        XCTAssertEqual(StoreSchema.sql + "\n", file, "run tools/store/embed_schema.sh after editing schema/store.sql")
    }

    func testNewStoreHoldsExactlyTheSchemaObjects() throws {
        let path = StoreTestSupport.temporaryStorePath(self)
        _ = try Store(path: path, mode: .create)
        // Apply the SQL file to an empty in-memory database and compare the catalogs.
        let file = try String(contentsOf: StoreTestSupport.root.appendingPathComponent("schema/store.sql"), encoding: .utf8)
        let reference = try DatabaseQueue()
        try reference.write { try $0.execute(sql: file) }
        let catalog = "SELECT type, name, sql FROM sqlite_master WHERE name NOT LIKE 'sqlite_%' ORDER BY type, name"
        let expected = try reference.read { try Row.fetchAll($0, sql: catalog) }
        let actual = try DatabaseQueue(path: path).read { try Row.fetchAll($0, sql: catalog) }
        XCTAssertEqual(actual, expected)
        XCTAssertFalse(expected.isEmpty)
        let meta = try DatabaseQueue(path: path).read { try String.fetchOne($0, sql: "SELECT value FROM meta WHERE key = 'format_version'") }
        XCTAssertEqual(meta, String(StoreSchema.formatVersion))
    }
}
