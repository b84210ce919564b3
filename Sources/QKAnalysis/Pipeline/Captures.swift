import QKTensor
import QKModels
import QKTrain

/// Runs the model over a sequence set in batches and turns each captured batch into step 2's
/// per-sequence codes (both transcoders encode the attention input; the model's pattern is kept).
enum Captures {
    static func pairMapSequences(_ set: SequenceSet, model: any TransformerModel, layer: Int,
                                 query: Transcoder, key: Transcoder, batchSize: Int = 32,
                                 progress: ((Int) -> Void)? = nil) throws -> [PairMapSequence] {
        var out: [PairMapSequence] = []
        out.reserveCapacity(set.count)
        var done = 0
        for batch in set.batches(size: batchSize) {
            let capture = try model.capture(batch, layer: layer)
            out.append(contentsOf: try PairMapSequence.sequences(from: capture, query: query, key: key))
            done += batch.batch
            progress?(done)
        }
        return out
    }

    /// One sequence set followed by another (the held-out part first, as the step-1 trainer
    /// takes its held-out sequences from the start of its source).
    static func concatenate(_ a: SequenceSet, _ b: SequenceSet) -> SequenceSet {
        SequenceSet(ids: a.ids + b.ids, context: a.context)
    }
}
