/// Which key positions play the attention-sink role.
///
/// Heads with nothing to do park their attention on a "sink" key. With a BOS token that is
/// BOS (and GPT-2/BERT analyses look for BOS/[CLS]). Models such as SmolLM2 add no BOS by
/// default, yet they still sink: under a causal mask position 0 is the only key every query
/// sees, and the first token of each sequence — whatever it is — takes the role. So a sink
/// position is **position 0 of every sequence, plus any position holding the BOS id** (a BOS
/// prepended with `--bos yes`, or one inside packed text). Packed sequences that start
/// mid-document are no exception: their first token is still position 0.
public enum AttentionSinks {
    /// `[batch·length]` flags, true where the key position is a sink.
    public static func positions(_ tokens: TokenBatch, bosID: Int32?) -> [Bool] {
        var flags = [Bool](repeating: false, count: tokens.ids.count)
        for (i, id) in tokens.ids.enumerated() where i % tokens.length == 0 || (bosID != nil && id == bosID) {
            flags[i] = true
        }
        return flags
    }
}

extension TokenBatch {
    /// The same sequences with `bos` in front of each (one position longer): `--bos yes`.
    public func prependingBOS(_ bos: Int32) -> TokenBatch {
        var ids: [Int32] = []
        ids.reserveCapacity(batch * (length + 1))
        for b in 0..<batch { ids.append(bos); ids.append(contentsOf: sequence(b)) }
        return TokenBatch(ids: ids, batch: batch, length: length + 1)
    }
}
