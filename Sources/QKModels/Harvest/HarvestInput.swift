import Foundation

/// Where a harvest's token sequences come from.
public enum HarvestInput: Sendable {
    /// Each text is one sequence of its natural length (BERT `[CLS] text [SEP]`, decoders
    /// `BOS text`); several texts must tokenize to the same length.
    case texts([String])
    /// A pre-tokenized `[n, context]` array (`.npy` or `.safetensors` tensor `tokens`), used as is.
    case tokens(path: String)
    /// A `.txt`/`.jsonl` file or a directory of them, packed into `context`-token sequences
    /// (see `PackingRule`).
    case corpus(path: String)
}

extension HarvestInput {
    /// The token sequences this input gives for `model`, at most `maxSequences` of them.
    public func sequences(for model: any TransformerModel, context: Int, maxSequences: Int?, bos: Bool) throws -> SequenceSet {
        if let maxSequences, maxSequences < 1 { throw ModelError("--max-sequences must be at least 1, got \(maxSequences)") }
        switch self {
        case .texts(let texts):
            guard !texts.isEmpty else { throw ModelError("no text given") }
            for (i, text) in texts.enumerated() where text.trimmingCharacters(in: .whitespacesAndNewlines).isEmpty {
                throw ModelError(texts.count == 1 ? "the text is empty" : "text \(i + 1) is empty")
            }
            let tokenizer = try model.requireTokenizer()
            let rule = PackingRule.forModel(model.config, tokenizer: tokenizer, context: 0, bos: bos)
            var seqs: [[Int32]] = []
            for (i, text) in texts.enumerated() {
                let ids = rule.single(tokenizer.encode(text), architecture: model.config.architecture)
                guard !ids.isEmpty else { throw ModelError("text \(i + 1) gives no tokens") }
                seqs.append(ids)
            }
            let lengths = Set(seqs.map(\.count))
            guard lengths.count == 1 else {
                throw ModelError("the texts tokenize to different lengths (\(seqs.map { String($0.count) }.joined(separator: ", "))); give them as a --corpus to pack them")
            }
            let set = SequenceSet(ids: seqs.flatMap { $0 }, context: seqs[0].count)
            return maxSequences.map { set.prefix($0) } ?? set
        case .tokens(let path):
            let set = try TokenArrayReader.read(path: path)
            return maxSequences.map { set.prefix($0) } ?? set
        case .corpus(let path):
            let documents = try DocumentReader.documents(at: path)
            guard context >= 2 else { throw ModelError("--context must be at least 2, got \(context)") }
            guard context <= model.config.maxPositions else {
                throw ModelError("--context \(context) exceeds the model's \(model.config.maxPositions) positions")
            }
            let tokenizer = try model.requireTokenizer()
            let rule = PackingRule.forModel(model.config, tokenizer: tokenizer, context: context, bos: bos)
            let set = try SequencePacker.pack(documents.lazy.map { tokenizer.encode($0) }, rule: rule, limit: maxSequences)
            guard set.count > 0 else {
                throw ModelError("\(path): the corpus does not fill one sequence of \(context) tokens")
            }
            return set
        }
    }
}
