import Foundation
import GRDB

extension Store {
    /// Stores a dense Float32 tensor (e.g. a transcoder's W_enc) for a run, replacing any of the
    /// same name: little-endian bytes, byte-shuffled, zstd-compressed, checksummed. Round-trips exactly.
    public func putTensor(run: Int64, name: String, shape: [Int], values: [Float]) throws {
        guard shape.allSatisfy({ $0 >= 0 }), Store.elementCount(shape) == values.count else {
            throw StoreError("tensor '\(name)' of run \(run): shape \(shape) does not hold \(values.count) values")
        }
        let blob = zstd.compress(values.withUnsafeBytes { ByteShuffle.shuffle($0, width: 4) })
        let shapeJSON = "[" + shape.map(String.init).joined(separator: ",") + "]"
        try write { db in
            _ = try requireRun(run, db)
            try db.execute(sql: "INSERT OR REPLACE INTO tensors (run_id, name, dtype, shape, checksum, data) VALUES (?, ?, 'f32', ?, ?, ?)",
                           arguments: [run, name, shapeJSON, Checksum.of(blob), Data(blob)])
        }
    }

    /// Names of a run's tensors.
    public func tensorNames(run: Int64) throws -> [String] {
        try read { db in
            _ = try requireRun(run, db)
            return try String.fetchAll(db, sql: "SELECT name FROM tensors WHERE run_id = ? ORDER BY name", arguments: [run])
        }
    }

    /// A stored tensor, checksum verified.
    public func tensor(run: Int64, name: String) throws -> (shape: [Int], values: [Float]) {
        try read { db in
            _ = try requireRun(run, db)
            guard let row = try Row.fetchOne(db, sql: "SELECT shape, checksum, data FROM tensors WHERE run_id = ? AND name = ?", arguments: [run, name]) else {
                throw StoreError("\(path): run \(run) has no tensor '\(name)'")
            }
            return try decodeTensor(row, run: run, name: name)
        }
    }

    /// The number of elements of a shape, or nil when it overflows.
    static func elementCount(_ shape: [Int]) -> Int? {
        var n = 1
        for d in shape {
            let (m, overflow) = n.multipliedReportingOverflow(by: d)
            if overflow || m > Int(Int32.max) { return nil }
            n = m
        }
        return n
    }

    func decodeTensor(_ row: Row, run: Int64, name: String) throws -> (shape: [Int], values: [Float]) {
        let what = "tensor '\(name)' of run \(run)"
        let blob = [UInt8](try row.required("data", "\(path): \(what)") as Data)
        guard Checksum.of(blob) == (try row.required("checksum", "\(path): \(what)") as Int64) else { throw StoreError("\(path): \(what): checksum mismatch (the tensor is corrupt)") }
        guard let shape = try? JSONSerialization.jsonObject(with: Data(((try row.optional("shape", what) as String?) ?? "").utf8)) as? [Int],
              shape.allSatisfy({ $0 >= 0 }), let count = Store.elementCount(shape) else { throw StoreError("\(path): \(what): damaged shape") }
        let shuffled = try zstd.decompressBytes(blob, count: 4 * count, what: "\(path): \(what)")
        var values = [Float](repeating: 0, count: count)
        shuffled.withUnsafeBytes { s in values.withUnsafeMutableBytes { ByteShuffle.unshuffle(s, width: 4, into: $0) } }
        return (shape, values)
    }
}
