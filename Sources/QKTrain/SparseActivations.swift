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
