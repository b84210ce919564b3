import XCTest
import Foundation

/// A fast sample of the fuzzing campaign (tools/fuzz/campaign.py, which the README's figures
/// come from at 10,000 cases per reader): mutated stores, model folders and GGUF files through
/// the real binary — no crash, nothing over 10 s or 1 GB, every error one line, and no answer
/// from a damaged store that differs from the pristine one without an error.
final class FuzzSampleTests: XCTestCase {
    func testAFuzzSampleFindsNothing() throws {
        // A seed per day: the sample moves over the input space from run to run, reproducibly.
        let seed = Int(Date().timeIntervalSince1970 / 86400)
        let r = try CLI.python([CLI.root.appendingPathComponent("tools/fuzz/campaign.py").path, "--qkdb", CLI.binary.path,
                                "--cases", "100", "--store-cases", "30", "--seed", String(seed)])
        let data = r.stdout, errors = r.stderr
        let summary = String(decoding: data, as: UTF8.self)
        XCTAssertEqual(r.status, 0, "seed \(seed): \(summary) \(errors)")
        let json = try XCTUnwrap(try JSONSerialization.jsonObject(with: data) as? [String: Any], summary + errors)
        let readers = try XCTUnwrap(json["readers"] as? [String: [String: Any]])
        XCTAssertEqual(Set(readers.keys), ["store", "safetensors", "gguf"])
        XCTAssertEqual(readers.values.map { $0["cases"] as? Int ?? 0 }.reduce(0, +), 230)
    }
}
