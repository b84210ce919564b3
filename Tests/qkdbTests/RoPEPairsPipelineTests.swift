import XCTest
import Foundation

/// `qkdb run` on the tiny random Llama fixture (RoPE, 4 heads over 2 key/value heads): step 2
/// takes the offset-exact path, the store gets `peak_offset`/`peak_value` and θ, evaluation
/// patches in the pruned map's pattern, and `qkdb pairs --offset` answers on the stored run.
final class RoPEPairsPipelineTests: XCTestCase {
    static let model = CLI.root.appendingPathComponent("Tests/Fixtures/llama/tiny").path

    /// `[n, ctx]` int32 token ids as a .npy file (the fixture has no tokenizer).
    static func tokens(in dir: URL, sequences n: Int, context: Int) throws -> String {
        var state: UInt64 = 11
        var ids = [Int32]()
        for _ in 0..<n {
            ids.append(1)   // BOS
            for _ in 1..<context { state = state &* 6364136223846793005 &+ 1442695040888963407; ids.append(Int32(3 + (state >> 33) % 90)) }
        }
        var header = "{'descr': '<i4', 'fortran_order': False, 'shape': (\(n), \(context)), }"
        while (10 + header.utf8.count + 1) % 64 != 0 { header += " " }
        header += "\n"
        var data = Data([0x93] + Array("NUMPY".utf8) + [1, 0, UInt8(header.utf8.count & 0xff), UInt8(header.utf8.count >> 8)])
        data.append(contentsOf: Array(header.utf8))
        ids.withUnsafeBytes { data.append(contentsOf: $0) }
        let path = dir.appendingPathComponent("tokens.npy").path
        try data.write(to: URL(fileURLWithPath: path))
        return path
    }

    func testRunOnTinyLlamaStoresOffsetsAndEvaluatesThePrunedMap() throws {
        let dir = CLI.temporaryDirectory(self)
        let tokens = try Self.tokens(in: dir, sequences: 48, context: 16)
        let store = dir.appendingPathComponent("llama.qkdb").path
        let run = try CLI.run(["run", "--model", Self.model, "--tokens", tokens, "--layer", "1", "--d-hidden", "24",
                               "--train-tokens", "2000", "--batch", "4", "--top-k", "4", "--mask-epochs", "2",
                               "--mask-sequences", "16", "--eval-sequences", "2", "--store", store])
        XCTAssertEqual(run.status, 0, run.stderr)
        guard run.status == 0 else { return }

        let runs = try CLI.run(["runs", "--store", store, "--format", "json"])
        let info = try XCTUnwrap((try JSONSerialization.jsonObject(with: Data(runs.stdout.utf8)) as? [[String: Any]])?.first)
        XCTAssertEqual(info["status"] as? String, "complete")
        let metrics = try XCTUnwrap(info["metrics"] as? [String: Any])
        let step2 = try XCTUnwrap(metrics["step2"] as? [String: Any])
        let unmasked = try XCTUnwrap(step2["klUnmasked"] as? Double)
        XCTAssertTrue(unmasked.isFinite && unmasked >= 0)
        let eval = try XCTUnwrap(metrics["eval"] as? [String: Any])
        XCTAssertTrue("\(eval)".contains("pruned_map"), "evaluation lacks the pruned map: \(eval)")

        let out = dir.appendingPathComponent("pairs.csv").path
        let export = try CLI.run(["export", "--store", store, "--run", "1", "--what", "pairs", "--out", out])
        XCTAssertEqual(export.status, 0, export.stderr)
        let lines = try String(contentsOfFile: out, encoding: .utf8).split(separator: "\n")
        XCTAssertEqual(lines.first.map(String.init),
                       "run,head,query_feature,key_feature,value,mask,importance,mean_contribution,cooccurrence,peak_offset,peak_value,query_label,key_label")
        guard lines.count > 1 else { return XCTFail("no pairs survived") }
        let first = Array(lines[1].split(separator: ",", omittingEmptySubsequences: false).dropFirst())   // after the run column
        let offset = try XCTUnwrap(Double(first[8]))
        XCTAssertTrue(offset >= 0 && offset < 16 && offset == offset.rounded())
        XCTAssertEqual(Float(first[3]), Float(first[9]))   // value = peak_value on RoPE runs

        // --offset at the pair's own peak offset gives back its peak value.
        let at = try CLI.run(["pairs", "--store", store, "--run", "1", "--query-feature", String(first[1]), "--head", String(first[0]),
                              "--top", "0", "--offset", String(Int(offset)), "--format", "json"])
        XCTAssertEqual(at.status, 0, at.stderr)
        let rows = try XCTUnwrap(try JSONSerialization.jsonObject(with: Data(at.stdout.utf8)) as? [[String: Any]])
        let row = try XCTUnwrap(rows.first { $0["key_feature"] as? Int == Int(first[2]) })
        let peak = try XCTUnwrap(Float(first[9]))
        XCTAssertEqual((row["value_at_offset"] as? NSNumber)?.floatValue ?? .nan, peak, accuracy: 1e-4 * max(abs(peak), 1e-6))
    }
}
