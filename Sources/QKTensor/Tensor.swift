/// A dense, row-major Float32 tensor.
///
/// `Tensor` is a value type backed by a Swift array, so copies are cheap until
/// written (copy-on-write). Hot loops should reach the storage through
/// `withUnsafeBufferPointer` / `withUnsafeMutableBufferPointer` and hand it to BLAS.
///
/// Shapes follow the TransformerLens conventions used in the rest of qkdb:
/// `[batch, pos, d_model]`, `[batch, pos, head, d_head]`, `[batch, head, q_pos, k_pos]`.
public struct Tensor: Sendable, Equatable {
    public private(set) var shape: [Int]
    public var data: [Float]

    /// A zero-filled tensor.
    public init(zeros shape: [Int]) {
        precondition(shape.allSatisfy { $0 >= 0 }, "negative dimension in \(shape)")
        self.shape = shape
        self.data = [Float](repeating: 0, count: shape.reduce(1, *))
    }

    /// A tensor over existing values; `data.count` must equal the product of `shape`.
    public init(shape: [Int], data: [Float]) {
        precondition(shape.reduce(1, *) == data.count, "shape \(shape) does not hold \(data.count) values")
        self.shape = shape
        self.data = data
    }

    public init(shape: [Int], repeating value: Float) {
        self.shape = shape
        self.data = [Float](repeating: value, count: shape.reduce(1, *))
    }

    /// Number of elements.
    public var count: Int { data.count }
    public var rank: Int { shape.count }

    /// Row-major strides, in elements.
    public var strides: [Int] { Tensor.strides(of: shape) }

    public static func strides(of shape: [Int]) -> [Int] {
        var s = [Int](repeating: 1, count: shape.count)
        var acc = 1
        for i in stride(from: shape.count - 1, through: 0, by: -1) { s[i] = acc; acc *= shape[i] }
        return s
    }

    /// The same values under another shape with the same element count.
    public func reshaped(_ newShape: [Int]) -> Tensor {
        Tensor(shape: newShape, data: data)
    }

    public mutating func reshape(_ newShape: [Int]) {
        precondition(newShape.reduce(1, *) == data.count, "cannot reshape \(shape) to \(newShape)")
        shape = newShape
    }

    /// Flat offset of a multi-index.
    @inlinable
    public func offset(_ index: [Int]) -> Int {
        var o = 0, acc = 1
        for i in stride(from: shape.count - 1, through: 0, by: -1) { o += index[i] * acc; acc *= shape[i] }
        return o
    }

    public subscript(_ index: Int...) -> Float {
        get { data[offset(index)] }
        set { data[offset(index)] = newValue }
    }

    /// A contiguous slice along the first axis, `[start, start+length)`, copied out.
    public func rows(_ start: Int, _ length: Int) -> Tensor {
        let inner = shape.dropFirst().reduce(1, *)
        var s = shape; s[0] = length
        return Tensor(shape: s, data: Array(data[(start * inner)..<((start + length) * inner)]))
    }

    /// Element `i` along the first axis (a tensor of rank-1 less), copied out.
    public func row(_ i: Int) -> Tensor {
        let inner = shape.dropFirst().reduce(1, *)
        return Tensor(shape: Array(shape.dropFirst()), data: Array(data[(i * inner)..<((i + 1) * inner)]))
    }

    /// Concatenates tensors of equal trailing shape along the first axis.
    public static func concatenate(_ parts: [Tensor]) -> Tensor {
        guard let first = parts.first else { return Tensor(zeros: [0]) }
        var s = first.shape
        s[0] = parts.reduce(0) { $0 + $1.shape[0] }
        var d = [Float](); d.reserveCapacity(s.reduce(1, *))
        for p in parts {
            precondition(Array(p.shape.dropFirst()) == Array(first.shape.dropFirst()), "concatenate: trailing shapes differ")
            d.append(contentsOf: p.data)
        }
        return Tensor(shape: s, data: d)
    }

    /// Largest absolute difference to another tensor of the same shape.
    public func maxAbsDifference(_ other: Tensor) -> Float {
        precondition(shape == other.shape, "shape \(shape) vs \(other.shape)")
        var m: Float = 0
        for i in 0..<data.count { m = max(m, abs(data[i] - other.data[i])) }
        return m
    }
}
