import Foundation
import QKTensor

/// Step-1 checkpoints: one `.safetensors` file holding both dictionaries' weights, their Adam
/// moments and feature-activity counters as tensors, and the scalars (step, tokens, generator
/// states, λ, data-order position) plus the options and geometry as metadata. Floats in the
/// metadata are written as their bit patterns so nothing is lost to decimal printing.
public enum Step1Checkpoint {
    static let format = "qkdb-step1-checkpoint-1"

    static func write(_ s: TrainerState, options: TrainingOptions, geometry: AttentionGeometry, to path: String) throws {
        var w = SafeTensorsWriter()
        func add(_ prefix: String, _ p: TranscoderParameters) {
            w.add("\(prefix).encoder_t", shape: [p.dHidden, p.dIn], float32: p.encoderT)
            w.add("\(prefix).b_enc", shape: [p.dHidden], float32: p.bEnc)
            w.add("\(prefix).W_dec", shape: [p.dHidden, p.dOut], float32: p.wDec)
            w.add("\(prefix).b_dec", shape: [p.dOut], float32: p.bDec)
        }
        add("query", s.query); add("key", s.key)
        add("query.adam_m", s.adamQuery.m); add("query.adam_v", s.adamQuery.v)
        add("key.adam_m", s.adamKey.m); add("key.adam_v", s.adamKey.v)
        w.add("query.last_fired", shape: [s.activityQuery.lastFired.count], int64: s.activityQuery.lastFired.map(Int64.init))
        w.add("key.last_fired", shape: [s.activityKey.lastFired.count], int64: s.activityKey.lastFired.map(Int64.init))
        let enc = JSONEncoder(); enc.outputFormatting = .sortedKeys
        w.metadata = [
            "format": format,
            "step": String(s.step), "tokens_seen": String(s.tokensSeen), "rng": String(s.rng.state),
            "stream_blocks": String(s.stream.blocksRead), "stream_seed": String(s.stream.blockSeed),
            "stream_position": String(s.stream.position), "stream_rng": String(s.stream.rngState),
            "lambda_query_bits": String(s.lambdaQuery.bitPattern), "lambda_key_bits": String(s.lambdaKey.bitPattern),
            "next_resample": String(s.nextResampleAt), "sequence_length": String(s.sequenceLength),
            "options": String(decoding: try enc.encode(options), as: UTF8.self),
            "geometry": String(decoding: try enc.encode(geometry), as: UTF8.self),
        ]
        do { try w.write(to: path) } catch { throw TrainError("checkpoint \(path): \(error)") }
    }

    /// The training options a checkpoint was written with (what `--resume` must match).
    public static func options(_ path: String) throws -> TrainingOptions { try read(path).1 }

    static func read(_ path: String) throws -> (TrainerState, TrainingOptions, AttentionGeometry) {
        let f: SafeTensorsFile
        do { f = try SafeTensorsFile(path: path) } catch { throw TrainError("checkpoint \(path): \(error)") }
        let fail = { (m: String) in TrainError("checkpoint \(path): \(m)") }
        guard f.metadata["format"] == format else { throw fail("not a qkdb step-1 checkpoint (format \(f.metadata["format"] ?? "missing"))") }
        func meta<T: LosslessStringConvertible>(_ k: String, _: T.Type) throws -> T {
            guard let s = f.metadata[k], let v = T(s) else { throw fail("metadata \(k) is missing or malformed") }
            return v
        }
        let dec = JSONDecoder()
        let options: TrainingOptions, geometry: AttentionGeometry
        do {
            options = try dec.decode(TrainingOptions.self, from: Data((f.metadata["options"] ?? "").utf8))
            geometry = try dec.decode(AttentionGeometry.self, from: Data((f.metadata["geometry"] ?? "").utf8))
        } catch { throw fail("options or geometry metadata is malformed") }
        func params(_ prefix: String) throws -> TranscoderParameters {
            do {
                let e = try f.floatTensor("\(prefix).encoder_t"), d = try f.floatTensor("\(prefix).W_dec")
                let be = try f.floatTensor("\(prefix).b_enc"), bd = try f.floatTensor("\(prefix).b_dec")
                guard e.rank == 2, d.rank == 2, e.shape[0] == d.shape[0], be.count == e.shape[0], bd.count == d.shape[1] else {
                    throw fail("tensors of \(prefix) have inconsistent shapes")
                }
                var p = TranscoderParameters(zerosIn: e.shape[1], hidden: e.shape[0], out: d.shape[1])
                p.encoderT = e.data; p.bEnc = be.data; p.wDec = d.data; p.bDec = bd.data
                return p
            } catch let e as TrainError { throw e } catch { throw TrainError("\(error)") }
        }
        let q = try params("query"), k = try params("key")
        var aq = AdamState(like: q), ak = AdamState(like: k)
        aq.m = try params("query.adam_m"); aq.v = try params("query.adam_v")
        ak.m = try params("key.adam_m"); ak.v = try params("key.adam_v")
        guard aq.m.encoderT.count == q.encoderT.count, aq.v.wDec.count == q.wDec.count,
              ak.m.encoderT.count == k.encoderT.count, ak.v.wDec.count == k.wDec.count else { throw fail("Adam moments do not match the weights' shapes") }
        var tq = FeatureActivityTracker(features: q.dHidden, window: options.deadWindowTokens)
        var tk = FeatureActivityTracker(features: k.dHidden, window: options.deadWindowTokens)
        do {
            tq.lastFired = try f.intArray("query.last_fired").values
            tk.lastFired = try f.intArray("key.last_fired").values
        } catch { throw TrainError("\(error)") }
        guard tq.lastFired.count == q.dHidden, tk.lastFired.count == k.dHidden else { throw fail("feature counters do not match d_hidden") }
        let state = TrainerState(
            query: q, key: k, adamQuery: aq, adamKey: ak,
            step: try meta("step", Int.self), tokensSeen: try meta("tokens_seen", Int.self),
            rng: TrainingRandom(state: try meta("rng", UInt64.self)),
            stream: .init(blocksRead: try meta("stream_blocks", Int.self), blockSeed: try meta("stream_seed", UInt64.self),
                          position: try meta("stream_position", Int.self), rngState: try meta("stream_rng", UInt64.self)),
            lambdaQuery: Float(bitPattern: try meta("lambda_query_bits", UInt32.self)),
            lambdaKey: Float(bitPattern: try meta("lambda_key_bits", UInt32.self)),
            activityQuery: tq, activityKey: tk, nextResampleAt: try meta("next_resample", Int.self),
            sequenceLength: try meta("sequence_length", Int.self))
        return (state, options, geometry)
    }
}
