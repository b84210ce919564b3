import Foundation
import QKTrain

/// How one feature's non-zero activations spread over the held-out sample: `bins` equal-width
/// bins from 0 to the feature's largest activation (the range SAE dashboards draw).
public struct ActivationHistogram: Sendable, Equatable {
    public var counts: [Int]
    /// Upper edge of the last bin (the largest activation seen).
    public var maxValue: Float
    /// Positions seen in total (firing or not), so density = Σ counts / positions.
    public var positions: Int

    public var bins: Int { counts.count }
    public var firing: Int { counts.reduce(0, +) }
    public var density: Double { positions == 0 ? 0 : Double(firing) / Double(positions) }
    /// Centre of bin b.
    public func centre(_ b: Int) -> Float { maxValue * (Float(b) + 0.5) / Float(bins) }

    /// One histogram per feature of a dictionary, from its codes over the sample (two passes:
    /// the maxima, then the counts; codes are sparse so both are cheap).
    public static func perFeature(codes: [SparseActivations], width: Int, bins: Int = 32) -> [ActivationHistogram] {
        var maxima = [Float](repeating: 0, count: width)
        var positions = 0
        for a in codes {
            positions += a.rows
            for e in 0..<a.nonZeros { let f = Int(a.indices[e]); maxima[f] = max(maxima[f], a.values[e]) }
        }
        var counts = [[Int]](repeating: [Int](repeating: 0, count: bins), count: width)
        for a in codes {
            for e in 0..<a.nonZeros {
                let v = a.values[e]
                guard v > 0 else { continue }
                let f = Int(a.indices[e])
                let b = min(bins - 1, Int(Float(bins) * v / maxima[f]))
                counts[f][b] += 1
            }
        }
        return (0..<width).map { ActivationHistogram(counts: counts[$0], maxValue: maxima[$0], positions: positions) }
    }

    /// A compact terminal bar chart: one line per non-empty run of bins, `rows` lines at most
    /// (bins are merged to fit), bar lengths proportional to the count.
    public func textChart(rows: Int = 8, width: Int = 40) -> String {
        guard firing > 0 else { return "(never fires on the held-out sample)\n" }
        let group = max(1, (bins + rows - 1) / rows)
        var lines: [(String, Int)] = []
        var b = 0
        while b < bins {
            let hi = min(bins, b + group)
            let n = counts[b..<hi].reduce(0, +)
            let lo = maxValue * Float(b) / Float(bins), up = maxValue * Float(hi) / Float(bins)
            lines.append((String(format: "%8.3f–%-8.3f", lo, up), n))
            b = hi
        }
        let top = lines.map(\.1).max() ?? 1
        return lines.map { label, n in
            let len = n == 0 ? 0 : max(1, Int((Double(n) / Double(top) * Double(width)).rounded()))
            return "\(label) \(String(repeating: "█", count: len))\(len > 0 ? " " : "")\(n)"
        }.joined(separator: "\n") + "\n"
    }
}
