import Foundation
import QKTensor
import QKTrain
import QKStore

/// How a run's dictionaries are laid out as store tensors: `query.W_enc`, `query.b_enc`,
/// `query.W_dec`, `query.b_dec`, and the same under `key.` (SAELens names and shapes).
public enum RunTensors {
    static let parts = ["W_enc", "b_enc", "W_dec", "b_dec"]

    public static func put(_ t: Transcoder, side: String, run: Int64, in store: Store) throws {
        for (name, tensor) in tensors(t, side: side) {
            try store.putTensor(run: run, name: name, shape: tensor.shape, values: tensor.data)
        }
    }

    /// The store tensors of one side's transcoder, with their names.
    static func tensors(_ t: Transcoder, side: String) -> [(name: String, tensor: Tensor)] {
        var out = zip(parts, [t.wEnc, t.bEnc, t.wDec, t.bDec]).map { ("\(side).\($0)", $1) }
        if let f = t.firstPositionFeature { out.append(("\(side).\(firstPositionName)", Tensor(shape: [1], data: [Float(f)]))) }
        return out
    }

    /// `[1]`: the index of the side's first-position feature; absent when it has none.
    static let firstPositionName = "first_position_feature"

    public static func transcoder(side: String, activation: TranscoderActivation, run: Int64, in store: Store) throws -> Transcoder {
        var ts: [Tensor] = []
        for name in parts {
            let (shape, values) = try store.tensor(run: run, name: "\(side).\(name)")
            guard shape.reduce(1, *) == values.count else { throw PipelineError("run \(run): tensor \(side).\(name) is inconsistent") }
            ts.append(Tensor(shape: shape, data: values))
        }
        guard ts[0].rank == 2, ts[2].rank == 2, ts[0].shape[1] == ts[2].shape[0],
              ts[1].count == ts[0].shape[1], ts[3].count == ts[2].shape[1] else {
            throw PipelineError("run \(run): the \(side) transcoder's tensors do not fit together")
        }
        var first: Int? = nil
        if try store.tensorNames(run: run).contains("\(side).\(firstPositionName)") {
            let (_, v) = try store.tensor(run: run, name: "\(side).\(firstPositionName)")
            guard v.count == 1, let f = Int(exactly: v[0]), f >= 0, f < ts[0].shape[1] else {
                throw PipelineError("run \(run): tensor \(side).\(firstPositionName) is not a feature index")
            }
            first = f
        }
        return Transcoder(wEnc: ts[0], bEnc: ts[1], wDec: ts[2], bDec: ts[3], activation: activation, firstPositionFeature: first)
    }
}
