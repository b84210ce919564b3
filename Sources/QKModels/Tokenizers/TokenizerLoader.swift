/// Loads the tokenizer that belongs to a Hugging Face model directory:
/// `vocab.txt` → WordPiece (BERT); `tokenizer.json` or `vocab.json` + `merges.txt` → byte-level BPE (GPT-2).
/// Placeholder until the tokenizer work lands; replaced by the real loader.
public func loadTokenizer(modelDirectory: String, architecture: Architecture) throws -> any Tokenizer {
    throw ModelError("\(modelDirectory): tokenizers are not built yet")
}
