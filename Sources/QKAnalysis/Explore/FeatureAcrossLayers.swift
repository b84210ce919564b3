import Foundation
import QKStore

/// Following one feature through depth: in the runs of the adjacent layers (same store, same
/// model), the same side's features whose encoder row (the residual-stream direction they read)
/// and decoder row (the q or k direction they write) point the most the same way.
///
/// Encoder rows of every layer read the same residual stream, so their cosine compares like with
/// like; decoder rows write into each layer's own q/k space, so their cosine says whether the
/// layers' W_Q/W_K happen to line up too. Matches are ranked by the encoder cosine.
///
///     let m = try FeatureAcrossLayers.matches(store: s, run: 3, side: .query, index: 447, top: 3)
///     m.first?.runs   // runs of layers 1 and 3 when run 3 is layer 2
public enum FeatureAcrossLayers {
    public struct Match: Sendable {
        public var run: Int64
        public var layer: Int
        public var feature: Int
        public var encoderCosine: Float
        public var decoderCosine: Float
    }

    /// The `top` best matches in each adjacent layer's run (layer − 1 first, then layer + 1; the
    /// newest run of a layer when there are several), for feature `index` of `side` in `run`.
    public static func matches(store: Store, run: Int64, side: FeatureSide, index: Int, top: Int = 5) throws -> [Match] {
        let info = try store.run(run)
        guard info.spec.kind == .trained, let layer = info.spec.layer else {
            throw PipelineError("run \(run) is \(info.spec.kind.rawValue): it has no dictionaries to match across layers")
        }
        let me = try Rows(store: store, run: run, side: side)
        guard index >= 0, index < me.count else {
            throw PipelineError("\(side.rawValue) feature \(index) is out of range for run \(run) (d_\(side.rawValue) \(me.count))")
        }
        let fingerprint = (try? PipelineOptions.from(json: info.spec.config))?.modelFingerprint
        let runs = try store.runs().filter {
            $0.spec.kind == .trained && $0.id != run && ($0.spec.layer == layer - 1 || $0.spec.layer == layer + 1)
                && (try? PipelineOptions.from(json: $0.spec.config))?.modelFingerprint == fingerprint
        }
        var out: [Match] = []
        for l in [layer - 1, layer + 1] {
            guard let other = runs.filter({ $0.spec.layer == l }).max(by: { $0.id < $1.id }) else { continue }
            let them = try Rows(store: store, run: other.id, side: side)
            guard them.encoderWidth == me.encoderWidth else { continue }
            var found: [Match] = []
            for f in 0..<them.count {
                let e = cosine(me.encoder(index), them.encoder(f))
                let d = them.decoderWidth == me.decoderWidth ? cosine(me.decoder(index), them.decoder(f)) : .nan
                found.append(Match(run: other.id, layer: l, feature: f, encoderCosine: e, decoderCosine: d))
            }
            found.sort { $0.encoderCosine != $1.encoderCosine ? $0.encoderCosine > $1.encoderCosine : $0.feature < $1.feature }
            out += found.prefix(max(0, top))
        }
        return out
    }

    /// One side's encoder columns and decoder rows, as stored (`W_enc` [d_in, d_hidden], `W_dec` [d_hidden, d_out]).
    struct Rows {
        let wEnc: [Float], wDec: [Float]
        let count: Int, encoderWidth: Int, decoderWidth: Int

        init(store: Store, run: Int64, side: FeatureSide) throws {
            let e = try store.tensor(run: run, name: "\(side.rawValue).W_enc"), d = try store.tensor(run: run, name: "\(side.rawValue).W_dec")
            guard e.shape.count == 2, d.shape.count == 2, e.shape[1] == d.shape[0] else {
                throw PipelineError("run \(run): the \(side.rawValue) transcoder's tensors do not fit together")
            }
            wEnc = e.values; wDec = d.values; count = d.shape[0]; encoderWidth = e.shape[0]; decoderWidth = d.shape[1]
        }

        func encoder(_ f: Int) -> [Float] { (0..<encoderWidth).map { wEnc[$0 * count + f] } }
        func decoder(_ f: Int) -> ArraySlice<Float> { wDec[(f * decoderWidth)..<((f + 1) * decoderWidth)] }
    }

    static func cosine<A: Collection, B: Collection>(_ a: A, _ b: B) -> Float where A.Element == Float, B.Element == Float {
        var dot: Float = 0, na: Float = 0, nb: Float = 0
        for (x, y) in zip(a, b) { dot += x * y; na += x * x; nb += y * y }
        return na > 0 && nb > 0 ? dot / (na.squareRoot() * nb.squareRoot()) : 0
    }
}
