import XCTest
import Foundation

/// What a planted fixture plants (its planted.json and planted.safetensors, written by
/// tools/fixtures/make_planted_family.py or make_planted_sink_gpt2.py), and the planted layer's
/// attention input for each token.
///
/// The fixtures' position embeddings are zero and every layer before the planted one writes
/// nothing, so that input is norm(embedding[t]) whatever the position: LayerNorm on GPT-2,
/// RMSNorm on Llama (both with weight 1 and bias 0 in the fixtures).
struct PlantedTruth {
    struct Pair {
        var head: Int
        var queryDirection: Int, keyDirection: Int
        var queryTokens: [Int], keyTokens: [Int]
        /// 1 for a previous-token pair (its score peaks at offset 1), nil for an offset-free one.
        var offset: Int?
    }
    /// A planted direction of one side: its unit vector in the attention input and its image through W_Q or W_K.
    struct Direction { var vector: [Float]; var image: [Float]; var role: String }

    let fixture: URL
    var name: String
    /// "gpt2 d96 4h/4kv 30 pairs 2 sinks", for tables.
    var shape: String
    var architecture: String
    var layer: Int
    var bos: Int
    var context: Int
    var pairs: [Pair]
    var sinkHeads: [Int]
    var queryDirections: [Direction], keyDirections: [Direction]
    /// Tokens the corpus is made of (BOS excluded), with their text.
    var usedTokens: [Int], tokenText: [Int: String]

    init(fixture: URL) throws {
        self.fixture = fixture
        let data = try Data(contentsOf: fixture.appendingPathComponent("planted.json"))
        let j = try XCTUnwrap(JSONSerialization.jsonObject(with: data) as? [String: Any])
        name = j["name"] as? String ?? fixture.lastPathComponent
        architecture = try XCTUnwrap(j["architecture"] as? String)
        layer = try XCTUnwrap(j["layer"] as? Int)
        bos = try XCTUnwrap(j["bos"] as? Int)
        context = j["context"] as? Int ?? 32
        sinkHeads = try XCTUnwrap(j["sink_heads"] as? [Int])
        pairs = try XCTUnwrap(j["pairs"] as? [[String: Any]]).map {
            Pair(head: try XCTUnwrap($0["head"] as? Int),
                 queryDirection: try XCTUnwrap($0["query_direction"] as? Int), keyDirection: try XCTUnwrap($0["key_direction"] as? Int),
                 queryTokens: try XCTUnwrap($0["query_tokens"] as? [Int]), keyTokens: try XCTUnwrap($0["key_tokens"] as? [Int]),
                 offset: $0["offset"] as? Int)
        }
        let kv = j["n_kv_head"] as? Int ?? 0, heads = j["n_head"] as? Int ?? 0
        shape = "\(architecture) d\(j["d_model"] as? Int ?? 0) \(heads)h\(kv != heads ? "/\(kv)kv" : "") \(pairs.count)p \(sinkHeads.count)s"
        usedTokens = try XCTUnwrap(j["used_tokens"] as? [Int])
        let text = try XCTUnwrap(j["token_text"] as? [String])
        tokenText = Dictionary(uniqueKeysWithValues: zip(usedTokens, text))

        let t = try SafeTensorsF32(url: fixture.appendingPathComponent("planted.safetensors"))
        func directions(_ side: String) throws -> [Direction] {
            let v = try t.tensor("\(side)_directions"), img = try t.tensor("\(side)_images")
            let roles = try XCTUnwrap(j["\(side)_directions"] as? [[String: Any]]).map { $0["role"] as? String ?? "pair" }
            let d = v.shape[1], w = img.shape[1]
            return (0..<v.shape[0]).map { i in
                Direction(vector: Array(v.values[(i * d)..<((i + 1) * d)]), image: Array(img.values[(i * w)..<((i + 1) * w)]),
                          role: i < roles.count ? roles[i] : "pair")
            }
        }
        queryDirections = try directions("query")
        keyDirections = try directions("key")
    }

    /// The tokens the scorer looks at: BOS and every token of the corpus.
    var scoredTokens: [Int] { [bos] + usedTokens }

    /// norm(embedding[t]) for every token of `scoredTokens`, in that order.
    func layerInputs() throws -> [[Float]] {
        let file = try SafeTensorsF32(url: fixture.appendingPathComponent("model.safetensors"))
        let names = architecture == "llama" ? ["model.embed_tokens.weight"] : ["wte.weight", "transformer.wte.weight"]
        let emb = try file.tensor(try XCTUnwrap(names.first(where: file.contains), "no embedding in \(fixture.path)"))
        let d = emb.shape[1]
        return scoredTokens.map { t in
            let row = Array(emb.values[(t * d)..<((t + 1) * d)])
            let mean = architecture == "llama" ? 0 : row.reduce(0, +) / Float(d)
            let variance = row.reduce(0) { $0 + ($1 - mean) * ($1 - mean) } / Float(d)
            return row.map { ($0 - mean) / (variance + 1e-5).squareRoot() }
        }
    }

    /// One long document (so no end-of-text separator, which is BOS here, falls inside a sequence)
    /// of `tokens` tokens: each drawn uniformly from the corpus tokens, except that now and then
    /// (10%) a previous-token pair's key token is put right before one of its query tokens, so
    /// those pairs have something to be seen on. `plantedShare`, when given, draws that share of
    /// the tokens from the pairs' own tokens instead (the single planted GPT-2 fixture's corpus).
    /// Every token is one character that tokenizes alone, so the text is exactly these tokens.
    func corpus(tokens: Int, seed: UInt64, plantedShare: Double? = nil, spaceRate: Double = 0) -> String {
        var rng = SplitMix(seed)
        let previous = pairs.filter { $0.offset == 1 }
        let plantedTokens = pairs.flatMap { $0.queryTokens + $0.keyTokens }
        let plantedSet = Set(plantedTokens)
        let others = plantedShare == nil ? usedTokens : usedTokens.filter { !plantedSet.contains($0) && $0 != 32 }
        var ids: [Int] = []
        ids.reserveCapacity(tokens + 1)
        while ids.count < tokens {
            if !previous.isEmpty, rng.unit() < 0.1 {
                let p = rng.pick(previous)
                ids.append(rng.pick(p.keyTokens)); ids.append(rng.pick(p.queryTokens))
            } else if let share = plantedShare {
                ids.append(rng.pick(rng.unit() < share ? plantedTokens : others))
            } else {
                ids.append(rng.pick(usedTokens))
            }
            if spaceRate > 0, rng.unit() < spaceRate { ids.append(32) }
        }
        return ids.map { tokenText[$0] ?? String(UnicodeScalar(UInt8($0))) }.joined() + "\n"
    }
}
