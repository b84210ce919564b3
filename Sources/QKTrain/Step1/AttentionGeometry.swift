import QKModels

/// The shape of one attention layer as the step-1 loss sees it: how many query and key heads,
/// their size, whether keys after the query are masked, and whether RoPE rotates q and k
/// before the scores. Taken from the model's `ModelConfig`, or from a harvest file's shapes.
public struct AttentionGeometry: Sendable, Equatable, Codable {
    public var nHead: Int
    public var nKVHead: Int
    public var dHead: Int
    public var causal: Bool
    public var ropeTheta: Float?

    public init(nHead: Int, nKVHead: Int, dHead: Int, causal: Bool, ropeTheta: Float? = nil) {
        self.nHead = nHead; self.nKVHead = nKVHead; self.dHead = dHead; self.causal = causal; self.ropeTheta = ropeTheta
    }

    public init(config: ModelConfig) {
        self.init(nHead: config.nHead, nKVHead: config.nKVHead, dHead: config.dHead,
                  causal: config.architecture.isCausal, ropeTheta: config.ropeTheta)
    }

    public var qWidth: Int { nHead * dHead }
    public var kWidth: Int { nKVHead * dHead }
    /// The key head query head `h` reads (grouped-query attention).
    @inlinable public func kvHead(of h: Int) -> Int { h / (nHead / nKVHead) }

    /// Throws unless the head counts divide evenly and RoPE has an even head size.
    public func validate() throws {
        guard nHead > 0, nKVHead > 0, dHead > 0, nHead % nKVHead == 0 else {
            throw TrainError("attention geometry: \(nHead) query heads cannot share \(nKVHead) key heads of size \(dHead)")
        }
        if ropeTheta != nil && dHead % 2 != 0 { throw TrainError("attention geometry: RoPE needs an even head size, got \(dHead)") }
    }
}
