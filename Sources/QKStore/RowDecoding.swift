import GRDB

/// Reading catalog rows without trusting them: GRDB's `row[...]` subscripts stop the process
/// when a value has the wrong type, which byte-level damage can cause even in STRICT tables.
/// These throw a `StoreError` naming what was read instead.
extension Row {
    func required<T: DatabaseValueConvertible>(_ key: String, _ what: @autoclosure () -> String) throws -> T {
        // A store written by another schema may lack the column: GRDB would stop the process.
        guard hasColumn(key) else { throw StoreError("\(what()): missing column \(key) (a store of another qkdb schema?)") }
        guard let v = T.fromDatabaseValue(self[key] as DatabaseValue) else { throw StoreError("\(what()): damaged or missing \(key)") }
        return v
    }

    func optional<T: DatabaseValueConvertible>(_ key: String, _ what: @autoclosure () -> String) throws -> T? {
        guard hasColumn(key) else { throw StoreError("\(what()): missing column \(key) (a store of another qkdb schema?)") }
        let dbValue: DatabaseValue = self[key]
        if dbValue.isNull { return nil }
        guard let v = T.fromDatabaseValue(dbValue) else { throw StoreError("\(what()): damaged \(key)") }
        return v
    }

    func required<T: DatabaseValueConvertible>(at index: Int, _ what: @autoclosure () -> String) throws -> T {
        guard let v = T.fromDatabaseValue(self[index] as DatabaseValue) else { throw StoreError("\(what()): damaged or missing column \(index)") }
        return v
    }

    func optional<T: DatabaseValueConvertible>(at index: Int, _ what: @autoclosure () -> String) throws -> T? {
        let dbValue: DatabaseValue = self[index]
        if dbValue.isNull { return nil }
        guard let v = T.fromDatabaseValue(dbValue) else { throw StoreError("\(what()): damaged column \(index)") }
        return v
    }
}
