import XCTest
import Foundation
@testable import QKTensor

final class SafeTensorsTests: XCTestCase {
    var dir: URL!
    override func setUp() {
        dir = FileManager.default.temporaryDirectory.appendingPathComponent("qkdb-st-\(UUID().uuidString)")
        try! FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
    }
    override func tearDown() { try? FileManager.default.removeItem(at: dir) }

    func testRoundTrip() throws {
        var w = SafeTensorsWriter()
        w.add("a", Tensor(shape: [2, 2], data: [1, 2, 3, 4]))
        w.add("ids", shape: [3], int32: [7, -1, 9])
        w.add("big", shape: [1], int64: [1 << 40])
        w.metadata["format"] = "pt"
        let p = dir.appendingPathComponent("x.safetensors").path
        try w.write(to: p)
        let f = try SafeTensorsFile(path: p)
        XCTAssertEqual(try f.floatTensor("a").data, [1, 2, 3, 4])
        XCTAssertEqual(try f.intArray("ids").values, [7, -1, 9])
        XCTAssertEqual(try f.intArray("big").values, [1 << 40])
        XCTAssertEqual(f.metadata["format"], "pt")
    }

    private func rawFile(_ header: String, data: Int) -> String {
        var h = Data(header.utf8)
        var n = UInt64(h.count).littleEndian
        var d = Data(bytes: &n, count: 8); d.append(h); h = d
        h.append(Data(count: data))
        let p = dir.appendingPathComponent("bad-\(UUID().uuidString).safetensors").path
        FileManager.default.createFile(atPath: p, contents: h)
        return p
    }

    func testRejectsBadFiles() {
        func message(_ p: String) -> String {
            do { _ = try SafeTensorsFile(path: p); return "opened" } catch { return "\(error)" }
        }
        XCTAssertTrue(message(rawFile("{\"a\":{\"dtype\":\"F32\",\"shape\":[4],\"data_offsets\":[0,16]}}", data: 8)).contains("outside the data section"))
        XCTAssertTrue(message(rawFile("{\"a\":{\"dtype\":\"F32\",\"shape\":[3],\"data_offsets\":[0,16]}}", data: 16)).contains("is not the 16 bytes"))
        XCTAssertTrue(message(rawFile("{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},\"b\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[4,12]}}", data: 16)).contains("overlaps"))
        XCTAssertTrue(message(rawFile("not json", data: 0)).contains("not a JSON object"))
        XCTAssertTrue(message(rawFile("{\"a\":{\"dtype\":\"Q9\",\"shape\":[1],\"data_offsets\":[0,1]}}", data: 1)).contains("unsupported dtype"))
        // Header length larger than the file.
        let p = dir.appendingPathComponent("short.safetensors").path
        var n = UInt64(1000).littleEndian
        FileManager.default.createFile(atPath: p, contents: Data(bytes: &n, count: 8) + Data("{}".utf8))
        XCTAssertTrue(message(p).contains("exceeds the file size"))
        XCTAssertTrue(message(dir.appendingPathComponent("missing").path).contains("cannot open"))
    }
}
