/// How documents become fixed-length model inputs.
///
/// The documents are laid end to end as one token stream, each followed by `separator`
/// (BERT: `[SEP]`; decoders: EOS), and the stream is cut into pieces of `context - 1` tokens
/// (or `context` when there is no `start` token), each prefixed with `start` (BERT: `[CLS]`;
/// decoders: BOS when `--bos yes`). So every sequence begins the way the model expects, a long
/// document continues into the next sequence, and no padding is ever needed. The final piece,
/// if shorter than a full sequence, is dropped.
public struct PackingRule: Sendable, Equatable {
    public var context: Int
    public var start: Int32?
    public var separator: Int32?

    public init(context: Int, start: Int32?, separator: Int32?) {
        self.context = context; self.start = start; self.separator = separator
    }

    /// The rule qkdb uses for a model: BERT always `[CLS] … [SEP]`; decoders BOS-prefixed
    /// (DESIGN §3, TransformerLens' prepend_bos) unless `bos` is false, EOS between documents.
    public static func forModel(_ config: ModelConfig, tokenizer: any Tokenizer, context: Int, bos: Bool) -> PackingRule {
        switch config.architecture {
        case .bert: return PackingRule(context: context, start: tokenizer.bosID, separator: tokenizer.eosID)
        case .gpt2, .llama: return PackingRule(context: context, start: bos ? tokenizer.bosID : nil, separator: tokenizer.eosID)
        }
    }

    /// One text as one sequence of its natural length (`qkdb harvest --text`): BERT
    /// `[CLS] text [SEP]`, decoders `BOS text` (BOS when the rule has a start token).
    public func single(_ ids: [Int32], architecture: Architecture) -> [Int32] {
        var out: [Int32] = []
        if let start { out.append(start) }
        out += ids
        if architecture == .bert, let separator { out.append(separator) }
        return out
    }
}

/// Packs tokenized documents into sequences, incrementally: feed documents, take sequences.
public struct SequencePacker {
    public let rule: PackingRule
    private var pending: [Int32] = []
    private var bodyLength: Int { rule.context - (rule.start == nil ? 0 : 1) }

    public init(rule: PackingRule) throws {
        guard rule.context >= (rule.start == nil ? 1 : 2) else {
            throw ModelError("context \(rule.context) is too short to hold any tokens")
        }
        self.rule = rule
    }

    /// Adds one document (its ids, without special tokens); empty documents are skipped.
    public mutating func add(_ document: [Int32]) {
        guard !document.isEmpty else { return }
        pending += document
        if let s = rule.separator { pending.append(s) }
    }

    /// Removes and returns every complete sequence the stream holds so far, flattened.
    public mutating func takeSequences() -> [Int32] {
        let body = bodyLength
        let n = pending.count / body
        guard n > 0 else { return [] }
        var out: [Int32] = []
        out.reserveCapacity(n * rule.context)
        for i in 0..<n {
            if let s = rule.start { out.append(s) }
            out += pending[(i * body)..<((i + 1) * body)]
        }
        pending.removeFirst(n * body)
        return out
    }

    /// Packs a whole list of documents, stopping once `limit` sequences are complete.
    public static func pack(_ documents: some Sequence<[Int32]>, rule: PackingRule, limit: Int? = nil) throws -> SequenceSet {
        var packer = try SequencePacker(rule: rule)
        var flat: [Int32] = []
        for doc in documents {
            packer.add(doc)
            flat += packer.takeSequences()
            if let limit, flat.count >= limit * rule.context { break }
        }
        if let limit { flat = Array(flat.prefix(limit * rule.context)) }
        return SequenceSet(ids: flat, context: rule.context)
    }
}
