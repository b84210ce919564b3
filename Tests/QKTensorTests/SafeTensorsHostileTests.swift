import XCTest
import Foundation
@testable import QKTensor

/// Hostile safetensors headers (issue 15's fuzzing cases): each is one clear error, never a trap,
/// a wrapped number or a misaligned read.
final class SafeTensorsHostileTests: XCTestCase {
    lazy var dir: URL = {
        let d = FileManager.default.temporaryDirectory.appendingPathComponent("qkdb-st-hostile-\(UUID().uuidString)")
        try! FileManager.default.createDirectory(at: d, withIntermediateDirectories: true)
        addTeardownBlock { try? FileManager.default.removeItem(at: d) }
        return d
    }()

    /// A file with `header` (padded to 8 bytes), `data` zero bytes, and the header length field
    /// off by `lengthDelta`.
    func file(_ header: String, data: Int, lengthDelta: Int = 0) -> String {
        var h = Data(header.utf8)
        while h.count % 8 != 0 { h.append(0x20) }
        var n = UInt64(h.count + lengthDelta).littleEndian
        let p = dir.appendingPathComponent("\(UUID().uuidString).safetensors").path
        FileManager.default.createFile(atPath: p, contents: Data(bytes: &n, count: 8) + h + Data(count: data))
        return p
    }

    func error(_ p: String) -> String {
        do { _ = try SafeTensorsFile(path: p); return "opened" } catch { return "\(error)" }
    }

    func testShapeWhoseByteCountOverflowsIsAnError() {
        for shape in ["[4611686018427387904]", "[2147483648, 2147483648]", "[9007199254740992, 9007199254740992]"] {
            let e = error(file("{\"a\":{\"dtype\":\"F32\",\"shape\":\(shape),\"data_offsets\":[0,16]}}", data: 16))
            XCTAssertTrue(e.contains("is not the 16 bytes") || e.contains("bad shape"), "\(shape): \(e)")
        }
    }

    func testDataOffsetsBeyond64BitsDoNotWrap() {
        // 2^64 + 16 would wrap to 16 through NSNumber.intValue.
        let e = error(file("{\"a\":{\"dtype\":\"F32\",\"shape\":[4],\"data_offsets\":[0,18446744073709551632]}}", data: 16))
        XCTAssertTrue(e.contains("malformed data_offsets"), e)
    }

    func testBooleanShapeIsNotOne() {
        let e = error(file("{\"a\":{\"dtype\":\"F32\",\"shape\":[true],\"data_offsets\":[0,4]}}", data: 4))
        XCTAssertTrue(e.contains("bad shape"), e)
    }

    func testHeaderLengthOneShortIsRefused() {
        let header = "{\"a\":{\"dtype\":\"F32\",\"shape\":[4],\"data_offsets\":[0,16]}}"
        XCTAssertEqual(error(file(header, data: 16)), "opened")
        let e = error(file(header, data: 16, lengthDelta: -1))
        XCTAssertTrue(e.contains("cover 16 of the 17 data bytes"), e)
    }

    func testAHoleOrTrailingBytesInTheDataSectionAreRefused() {
        let e = error(file("{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[8,16]}}", data: 16))
        XCTAssertTrue(e.contains("cover 8 of the 16 data bytes"), e)
    }

    func testLongGarbageInAShapeIsQuotedShort() {
        let garbage = String(repeating: "x", count: 5000)
        let e = error(file("{\"a\":{\"dtype\":\"F32\",\"shape\":[\"\(garbage)\"],\"data_offsets\":[0,4]}}", data: 4))
        XCTAssertTrue(e.contains("bad shape") && e.count < 300 && !e.contains("\n"), e)
    }
}
