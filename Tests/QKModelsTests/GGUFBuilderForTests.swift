import Foundation
import XCTest
import QKTensor
@testable import QKModels

/// Writes small GGUF files byte by byte, so the tests can build exactly the corrupt or unusual
/// file each case needs (wrong magic, a truncated table, an unsupported tensor type, ...).
struct GGUFBuilder {
    var magic: [UInt8] = Array("GGUF".utf8)
    var version: UInt32 = 3
    var kv: [(String, UInt32, [UInt8])] = []
    var tensors: [(name: String, dims: [UInt64], type: UInt32, data: [UInt8])] = []
    /// Overrides the stored offset of tensor i (to point outside the file).
    var offsetOverride: [Int: UInt64] = [:]

    static func le<T: FixedWidthInteger>(_ v: T) -> [UInt8] { withUnsafeBytes(of: v.littleEndian) { Array($0) } }
    static func str(_ s: String) -> [UInt8] { le(UInt64(s.utf8.count)) + Array(s.utf8) }

    mutating func add(_ key: String, u32 v: UInt32) { kv.append((key, 4, GGUFBuilder.le(v))) }
    mutating func add(_ key: String, string v: String) { kv.append((key, 8, GGUFBuilder.str(v))) }
    mutating func add(_ key: String, f32 v: Float) { kv.append((key, 6, GGUFBuilder.le(v.bitPattern))) }

    /// A float32 tensor (dims given outermost first, as qkdb reports them).
    mutating func addF32(_ name: String, shape: [Int], values: [Float]) {
        tensors.append((name, shape.reversed().map(UInt64.init), 0, values.flatMap { GGUFBuilder.le($0.bitPattern) }))
    }

    func bytes() -> [UInt8] {
        var out = magic + GGUFBuilder.le(version) + GGUFBuilder.le(UInt64(tensors.count)) + GGUFBuilder.le(UInt64(kv.count))
        for (k, t, v) in kv { out += GGUFBuilder.str(k) + GGUFBuilder.le(t) + v }
        var offset: UInt64 = 0
        var offsets: [UInt64] = []
        for t in tensors { offsets.append(offset); offset += (UInt64(t.data.count) + 31) / 32 * 32 }
        for (i, t) in tensors.enumerated() {
            out += GGUFBuilder.str(t.name) + GGUFBuilder.le(UInt32(t.dims.count))
            for d in t.dims { out += GGUFBuilder.le(d) }
            out += GGUFBuilder.le(t.type) + GGUFBuilder.le(offsetOverride[i] ?? offsets[i])
        }
        while out.count % 32 != 0 { out.append(0) }
        for t in tensors {
            out += t.data
            while out.count % 32 != 0 { out.append(0) }
        }
        return out
    }

    func write(_ test: XCTestCase, name: String = "test.gguf") throws -> String {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("qkdb-gguf-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        test.addTeardownBlock { try? FileManager.default.removeItem(at: dir) }
        let path = dir.appendingPathComponent(name).path
        try Data(bytes()).write(to: URL(fileURLWithPath: path))
        return path
    }
}

/// Asserts `body` throws an error whose description is one line containing every fragment.
func assertOneLineError(_ fragments: [String], file: StaticString = #filePath, line: UInt = #line, _ body: () throws -> Void) {
    do {
        try body()
        XCTFail("expected an error mentioning \(fragments)", file: file, line: line)
    } catch {
        let msg = String(describing: error)
        XCTAssertFalse(msg.contains("\n"), "error is not one line: \(msg)", file: file, line: line)
        for f in fragments { XCTAssertTrue(msg.contains(f), "error '\(msg)' lacks '\(f)'", file: file, line: line) }
    }
}
