import Foundation
import QKModels

/// The sequences a run reads, rebuilt identically by every stage: the corpus is packed into
/// `context`-token sequences, the tail `heldOutFraction` is held out (never trained on), and the
/// rest is shuffled with the run's seed.
public struct CorpusPlan: Sendable {
    public let train: SequenceSet
    public let heldOut: SequenceSet

    public init(options o: PipelineOptions, model: any TransformerModel) throws {
        let input: HarvestInput = o.corpus.map { .corpus(path: $0) } ?? .tokens(path: o.tokens ?? "")
        let all = try input.sequences(for: model, context: o.context, maxSequences: o.maxSequences, bos: o.bos)
        for id in all.ids where id < 0 || Int(id) >= model.config.vocabSize {
            throw PipelineError("token id \(id) is outside the model's vocabulary of \(model.config.vocabSize)")
        }
        guard all.count >= 4 else {
            throw PipelineError("the corpus gives only \(all.count) sequences of \(all.context) tokens; need at least 4")
        }
        let (train, held) = all.split(heldOutFraction: o.heldOutFraction)
        guard train.count >= 1, held.count >= 1 else { throw PipelineError("the corpus is too small to hold out \(o.heldOutFraction)") }
        self.train = train.shuffled(seed: o.seed)
        self.heldOut = held.prefix(min(held.count, o.heldOutSequences))
    }

    public var context: Int { train.context }
}
