import XCTest
import Foundation
import QKTrain
@testable import QKAnalysis

/// The report's summary page draws the sparsity frontier a run chose its L0 on.
final class FrontierPlotTests: XCTestCase {
    func testSummaryDrawsTheFrontierWithTheChosenPoint() throws {
        let kl = [2: 0.8206, 4: 0.5667, 8: 0.3889, 16: 0.2794, 32: 0.2198, 64: 0.1937]
        let points = kl.map { k, v in
            SparsityPoint(k: k, tokens: 1000, klFull: v, klQOnly: v, klKOnly: v, l0Query: Double(k), l0Key: Double(k),
                          liveQuery: 400, liveKey: 500, dHidden: 1536, seconds: 1)
        }
        let f = SparsityFrontier(points: points, baselineMeanPatternKL: 0.5565, baselineUniformKL: 2.3)
        let sweep = try JSONSerialization.jsonObject(with: JSONEncoder().encode(f))
        let metrics = String(decoding: try JSONSerialization.data(withJSONObject: ["sparsity_sweep": sweep]), as: UTF8.self)
        let html = ReportSite.headline(metrics, layer: 2)
        XCTAssertTrue(html.contains("<svg id=\"frontier-plot\""), html)
        XCTAssertEqual(html.components(separatedBy: "<circle").count - 1, 6)
        XCTAssertTrue(html.contains("id=\"frontier-chosen\""))
        XCTAssertTrue(html.contains("chosen L0 19.7"), html)
        XCTAssertEqual(html.components(separatedBy: "class=\"chosen\"").count - 1, 1)
        // Step 2's μ curve beside it.
        let curve = MaskPenaltyCurve(points: [MaskPenaltyPoint(penalty: 1e-6, kept: 900, klPruned: 0.11, ratio: 1.1),
                                              MaskPenaltyPoint(penalty: 2e-6, kept: 500, klPruned: 0.15, ratio: 1.5)],
                                     klUnmasked: 0.1, targetRatio: 1.4, chosen: 1.8e-6, rule: "the rule")
        let withCurve = ["sparsity_sweep": sweep, "step2": ["penalty_search": try JSONSerialization.jsonObject(with: JSONEncoder().encode(curve))]]
        let both = ReportSite.headline(String(decoding: try JSONSerialization.data(withJSONObject: withCurve), as: UTF8.self), layer: 2)
        XCTAssertTrue(both.contains("<table id=\"penalty-curve\">"), both)
        XCTAssertTrue(both.contains("<tr><th>1e-06</th><td class=\"num\">900</td>"), both)
        XCTAssertTrue(both.contains("<tr><th>2e-06</th><td class=\"num\">500</td>"), both)
        XCTAssertTrue(both.contains("μ 1.8e-06"), both)
        // A run without a sweep (pinned sparsity) has no such section.
        XCTAssertFalse(ReportSite.headline("{}", layer: 2).contains("frontier"))
        try Data(html.utf8).write(to: URL(fileURLWithPath: NSTemporaryDirectory() + "qkdb-frontier.html"))
    }
}
