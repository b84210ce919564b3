// Times qkdb's tokenizers on a JSON-lines corpus (field "text"), one text at a time, one thread.
// Built and run by tools/bench/tokenizers.sh; prints seconds, tokens and a checksum of the ids so
// the peer's output can be compared.
import Foundation
import QKModels

let args = CommandLine.arguments
guard args.count == 4 else {
    FileHandle.standardError.write("usage: tokenize_corpus CORPUS.jsonl wordpiece|bpe VOCAB.txt|TOKENIZER.json\n".data(using: .utf8)!)
    exit(2)
}
let lines = try String(contentsOfFile: args[1], encoding: .utf8).split(separator: "\n")
let texts: [String] = lines.compactMap { line in
    (try? JSONSerialization.jsonObject(with: Data(line.utf8))).flatMap { ($0 as? [String: Any])?["text"] as? String }
}
let tokenizer: any Tokenizer = args[2] == "wordpiece"
    ? try WordPieceTokenizer.load(vocabTXT: args[3])
    : try ByteLevelBPETokenizer.load(tokenizerJSON: args[3])
let bytes = texts.reduce(0) { $0 + $1.utf8.count }
for pass in ["cold", "warm"] {
    let start = Date()
    var count = 0
    var checksum: UInt64 = 0
    for text in texts {
        for id in tokenizer.encode(text) {
            checksum = checksum &* 1_000_003 &+ UInt64(id)
            count += 1
        }
    }
    let seconds = Date().timeIntervalSince(start)
    print(String(format: "qkdb %@ %@: %d texts, %.2f MB, %d tokens in %.3f s (%.1f MB/s), checksum %llu",
                 args[2], pass, texts.count, Double(bytes) / 1e6, count, seconds, Double(bytes) / 1e6 / seconds, checksum))
}
