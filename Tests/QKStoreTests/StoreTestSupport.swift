import Foundation
import XCTest
@testable import QKStore

/// Helpers shared by the store tests: temporary stores, random COO maps and a brute-force
/// reference that answers every query straight from the input arrays.
enum StoreTestSupport {
    static let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()

    static func temporaryStorePath(_ test: XCTestCase, _ name: String = "s.qkdb") -> String {
        let d = FileManager.default.temporaryDirectory.appendingPathComponent("qkstore-test-\(UUID().uuidString)")
        try? FileManager.default.createDirectory(at: d, withIntermediateDirectories: true)
        test.addTeardownBlock { try? FileManager.default.removeItem(at: d) }
        return d.appendingPathComponent(name).path
    }

    /// A deterministic generator (SplitMix64) so failures reproduce.
    struct Rng {
        var state: UInt64
        mutating func next() -> UInt64 {
            state &+= 0x9E37_79B9_7F4A_7C15
            var z = state
            z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
            z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
            return z ^ (z >> 31)
        }
        mutating func int(_ n: Int) -> Int { Int(next() % UInt64(n)) }
        mutating func float() -> Float { Float(next() >> 40) / Float(1 << 24) }
        /// Values with many ties, so tie-breaking is exercised.
        mutating func coarse() -> Float { Float(int(7)) - 3 }
    }

    /// A random map of `n` distinct coordinates (or fewer if the space is small), with an
    /// optional giant row and chosen columns. Entries come out in random order.
    static func randomMap(_ rng: inout Rng, shape: PairMapShape, n: Int, columns: [PairColumn], giantRow: (head: Int, query: Int)? = nil,
                          emptyHeads: Set<Int> = [], coarseValues: Bool = false, extra: [String] = []) -> PairCOO {
        var seen = Set<Int>()
        var h: [Int32] = [], q: [Int32] = [], k: [Int32] = []
        func add(_ hh: Int, _ qq: Int, _ kk: Int) {
            let key = (hh * shape.dQuery + qq) * shape.dKey + kk
            if seen.insert(key).inserted { h.append(Int32(hh)); q.append(Int32(qq)); k.append(Int32(kk)) }
        }
        if let g = giantRow { for kk in 0..<shape.dKey { add(g.head, g.query, kk) } }
        let heads = (0..<shape.nHead).filter { !emptyHeads.contains($0) }
        var attempts = 0
        while h.count < n && attempts < 20 * n && !heads.isEmpty {
            attempts += 1
            // Skewed: low feature indices are popular, and the maximal index always appears.
            let qq = rng.int(4) == 0 ? shape.dQuery - 1 : min(shape.dQuery - 1, rng.int(max(1, shape.dQuery)) * rng.int(max(1, shape.dQuery)) / max(1, shape.dQuery))
            let kk = rng.int(5) == 0 ? shape.dKey - 1 : rng.int(shape.dKey)
            add(heads[rng.int(heads.count)], qq, kk)
        }
        // Shuffle so the store must sort.
        var order = Array(0..<h.count)
        for i in stride(from: order.count - 1, to: 0, by: -1) { order.swapAt(i, rng.int(i + 1)) }
        var cols: [PairColumn: [Float]] = [:]
        for c in columns { cols[c] = order.map { _ in coarseValues ? rng.coarse() : (rng.float() - 0.3) * 4 } }
        let ex = extra.map { name in (name: name, values: order.map { _ in rng.float() }) }
        return PairCOO(head: order.map { h[$0] }, queryFeature: order.map { q[$0] }, keyFeature: order.map { k[$0] }, columns: cols, extra: ex)
    }

    /// The brute-force answer to a pairs query, computed from the COO arrays alone.
    static func expectedPairs(_ coo: PairCOO, nHead: Int, _ query: PairQuery) -> [PairRow] {
        var out: [PairRow] = []
        for h in query.head.map({ [$0] }) ?? Array(0..<nHead) {
            var rows: [PairRow] = []
            for n in 0..<coo.count where Int(coo.head[n]) == h {
                let lead = Int(query.side == .query ? coo.queryFeature[n] : coo.keyFeature[n])
                guard lead == query.feature else { continue }
                rows.append(PairRow(head: h, queryFeature: Int(coo.queryFeature[n]), keyFeature: Int(coo.keyFeature[n]),
                                    value: coo.columns[.value]![n], mask: coo.columns[.mask]?[n], importance: coo.columns[.importance]?[n],
                                    meanContribution: coo.columns[.meanContribution]?[n], cooccurrence: coo.columns[.cooccurrence]?[n],
                                    extra: coo.extra.map { $0.values[n] }))
            }
            rows.sort { a, b in
                let x = a.column(query.order)!, y = b.column(query.order)!
                if x != y { return query.ascending ? x < y : x > y }
                return query.side == .query ? a.keyFeature < b.keyFeature : a.queryFeature < b.queryFeature
            }
            out += query.top == 0 ? rows : Array(rows.prefix(query.top))
        }
        return out
    }
}
