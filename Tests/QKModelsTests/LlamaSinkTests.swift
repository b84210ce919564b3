import Foundation
import XCTest
import QKTensor
@testable import QKModels

final class LlamaSinkTests: XCTestCase {
    /// SmolLM2 adds no BOS, yet its first token is where idle heads park attention: at a
    /// middle layer most heads send most of the last query's attention to position 0.
    func testFirstTokenIsTheSinkWithoutBOS() throws {
        let model = try SmolLM2.model.get()
        let ref = try SafeTensorsFile(path: LlamaFixtures.dir.appendingPathComponent("smollm2_reference.safetensors").path)
        let ids = try ref.intArray("p0.tokens").values.map { Int32($0) }
        let batch = TokenBatch(sequences: [ids])
        let flags = AttentionSinks.positions(batch, bosID: model.bosID)
        XCTAssertEqual(flags.enumerated().filter(\.element).map(\.offset), [0])
        let p = try model.capture(batch, layer: 15).pattern
        let T = ids.count
        var toFirst: Float = 0
        for h in 0..<9 { toFirst += p[0, h, T - 1, 0] }
        XCTAssertGreaterThan(toFirst / 9, 0.5)
    }

    func testPrependingBOS() throws {
        let batch = TokenBatch(sequences: [[5, 6], [7, 8]]).prependingBOS(1)
        XCTAssertEqual(batch.ids, [1, 5, 6, 1, 7, 8])
        XCTAssertEqual(batch.length, 3)
        XCTAssertEqual(AttentionSinks.positions(TokenBatch(sequences: [[4, 1, 4]]), bosID: 1), [true, true, false])
    }
}
