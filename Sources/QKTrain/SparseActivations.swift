/// Sparse dictionary activations for a set of token positions, in CSR form:
/// row r (a token position) has features `indices[rowStart[r]..<rowStart[r+1]]` with `values` alongside.
/// Activations are ~15–30 non-zero out of thousands, so everything after the encoder works on this.
public struct SparseActivations: Sendable, Equatable {
    public var rowStart: [Int]
    public var indices: [Int32]
    public var values: [Float]
    /// Dictionary size (number of features).
    public var width: Int

    public init(width: Int) { self.width = width; rowStart = [0]; indices = []; values = [] }
    public init(rowStart: [Int], indices: [Int32], values: [Float], width: Int) {
        self.rowStart = rowStart; self.indices = indices; self.values = values; self.width = width
    }

    public var rows: Int { rowStart.count - 1 }
    public var nonZeros: Int { indices.count }

    /// Appends one row from a dense activation vector, keeping entries > 0.
    public mutating func appendRow(dense: UnsafePointer<Float>) {
        for i in 0..<width where dense[i] > 0 { indices.append(Int32(i)); values.append(dense[i]) }
        rowStart.append(indices.count)
    }

    public func row(_ r: Int) -> (indices: ArraySlice<Int32>, values: ArraySlice<Float>) {
        (indices[rowStart[r]..<rowStart[r + 1]], values[rowStart[r]..<rowStart[r + 1]])
    }

    /// Mean number of active features per row (L0).
    public var meanL0: Double { rows == 0 ? 0 : Double(nonZeros) / Double(rows) }
}

extension SparseActivations {
    /// The same codes with feature `feature` fixed to the first position of each sequence: it is
    /// active with activation 1 exactly on rows `0, t, 2t, …` (rows are whole sequences of `t`
    /// positions, back to back) and inactive on every other row, whatever the encoder said.
    ///
    /// This is the key dictionary's first-position feature (DESIGN §4): the key at position 0 —
    /// [CLS], BOS, the attention sink — is nearly the same vector in every sequence, so one fixed
    /// feature carries it, instead of dozens of learned features that all fire there at once and
    /// each need their own pairs in step 2.
    public func fixingFirstPosition(feature f: Int, sequenceLength t: Int) -> SparseActivations {
        precondition(t > 0 && f >= 0 && f < width)
        var out = SparseActivations(width: width)
        out.indices.reserveCapacity(nonZeros + rows / t + 1); out.values.reserveCapacity(nonZeros + rows / t + 1)
        out.rowStart.reserveCapacity(rows + 1)
        let fixed = Int32(f)
        for r in 0..<rows {
            var placed = r % t != 0
            for e in rowStart[r]..<rowStart[r + 1] {
                let i = indices[e]
                if i == fixed { continue }
                if !placed && i > fixed { out.indices.append(fixed); out.values.append(1); placed = true }
                out.indices.append(i); out.values.append(values[e])
            }
            if !placed { out.indices.append(fixed); out.values.append(1) }
            out.rowStart.append(out.indices.count)
        }
        return out
    }
}
