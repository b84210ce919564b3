import XCTest
@testable import QKStore

/// `Store.stage` makes a pipeline stage one transaction: all of its writes land, or none.
final class StoreStageTests: XCTestCase {
    func testAFailedStageLeavesNothingBehind() throws {
        let store = try Store(path: StoreTestSupport.temporaryStorePath(self), mode: .create)
        let kept = try store.createRun(RunSpec(name: "kept", kind: .trained, nHead: 2, dQuery: 4, dKey: 4))
        struct Boom: Error {}
        XCTAssertThrowsError(try store.stage {
            let r = try store.createRun(RunSpec(name: "doomed", kind: .trained, nHead: 2, dQuery: 4, dKey: 4))
            try store.putTensor(run: r, name: "query.W_enc", shape: [2, 2], values: [1, 2, 3, 4])
            try store.mergeMetrics(run: kept, "{\"touched\": 1}")
            // Reads inside the stage see its own writes.
            XCTAssertEqual(try store.tensor(run: r, name: "query.W_enc").values, [1, 2, 3, 4])
            throw Boom()
        })
        XCTAssertEqual(try store.runs().map(\.spec.name), ["kept"])
        XCTAssertFalse(try store.run(kept).spec.metrics.contains("touched"))
    }

    func testASuccessfulStageLandsWhole() throws {
        let store = try Store(path: StoreTestSupport.temporaryStorePath(self), mode: .create)
        let run = try store.stage { () -> Int64 in
            let r = try store.createRun(RunSpec(name: "r", kind: .trained, nHead: 1, dQuery: 3, dKey: 3))
            try store.putPairMap(run: r, PairCOO(head: [0, 0], queryFeature: [0, 2], keyFeature: [1, 1], columns: [.value: [0.5, -1]]))
            try store.setStatus(run: r, "masked")
            return r
        }
        XCTAssertEqual(try store.run(run).spec.status, "masked")
        XCTAssertEqual(try store.run(run).pairMap?.nnz, 2)
    }
}
