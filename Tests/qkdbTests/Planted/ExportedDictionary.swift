import XCTest
import Foundation

/// One transcoder as `qkdb export-dictionaries` writes it (SAELens layout), applied the way an
/// outside user would: a = act(x·W_enc + b_enc) with act ReLU, or TopK k when cfg.json says so.
/// The first-position key feature is reproduced by its exported encoder column (it fires on BOS).
struct ExportedDictionary {
    var wEnc: [Float], bEnc: [Float], wDec: [Float]
    var dIn: Int, dHidden: Int, dOut: Int
    var topK: Int?
    var firstPositionFeature: Int?

    init(directory: URL) throws {
        let file = try SafeTensorsF32(url: directory.appendingPathComponent("sae_weights.safetensors"))
        let w = try file.tensor("W_enc"), b = try file.tensor("b_enc"), dec = try file.tensor("W_dec")
        wEnc = w.values; bEnc = b.values; wDec = dec.values
        dIn = w.shape[0]; dHidden = w.shape[1]; dOut = dec.shape[1]
        let cfg = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(contentsOf: directory.appendingPathComponent("cfg.json"))) as? [String: Any])
        if cfg["activation_fn_str"] as? String == "topk" {
            topK = try XCTUnwrap((cfg["activation_fn_kwargs"] as? [String: Any])?["k"] as? Int)
        }
        firstPositionFeature = cfg["first_position_feature"] as? Int
    }

    func decoderRow(_ f: Int) -> [Float] { Array(wDec[(f * dOut)..<((f + 1) * dOut)]) }

    /// Activations [token][feature] for the given inputs.
    func activations(_ inputs: [[Float]]) -> [[Float]] {
        inputs.map { x in
            var pre = bEnc
            wEnc.withUnsafeBufferPointer { w in
                pre.withUnsafeMutableBufferPointer { p in
                    for i in 0..<dIn where x[i] != 0 {
                        let xi = x[i], row = i * dHidden
                        for f in 0..<dHidden { p[f] += xi * w[row + f] }
                    }
                }
            }
            var a = pre.map { max(0, $0) }
            if let k = topK, k < dHidden {
                let kept = Set((0..<dHidden).sorted { pre[$0] > pre[$1] }.prefix(k))
                for f in 0..<dHidden where !kept.contains(f) { a[f] = 0 }
            }
            return a
        }
    }
}

/// Correlation and cosine, in Double.
enum Stats {
    static func pearson(_ a: [Float], _ b: [Float]) -> Double {
        let n = Double(a.count)
        let ma = a.reduce(0) { $0 + Double($1) } / n, mb = b.reduce(0) { $0 + Double($1) } / n
        var sab = 0.0, saa = 0.0, sbb = 0.0
        for i in a.indices { let da = Double(a[i]) - ma, db = Double(b[i]) - mb; sab += da * db; saa += da * da; sbb += db * db }
        return saa > 0 && sbb > 0 ? sab / (saa * sbb).squareRoot() : 0
    }

    static func cosine(_ a: [Float], _ b: [Float]) -> Double {
        var ab = 0.0, aa = 0.0, bb = 0.0
        for i in a.indices { ab += Double(a[i]) * Double(b[i]); aa += Double(a[i]) * Double(a[i]); bb += Double(b[i]) * Double(b[i]) }
        return aa > 0 && bb > 0 ? ab / (aa * bb).squareRoot() : 0
    }

    static func dot(_ a: [Float], _ b: [Float]) -> Float { zip(a, b).reduce(0) { $0 + $1.0 * $1.1 } }
}
