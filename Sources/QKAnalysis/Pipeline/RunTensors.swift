import Foundation
import QKTensor
import QKTrain
import QKStore

/// How a run's dictionaries are laid out as store tensors: `query.W_enc`, `query.b_enc`,
/// `query.W_dec`, `query.b_dec`, and the same under `key.` (SAELens names and shapes).
public enum RunTensors {
    static let parts = ["W_enc", "b_enc", "W_dec", "b_dec"]

    public static func put(_ t: Transcoder, side: String, run: Int64, in store: Store) throws {
        for (name, tensor) in zip(parts, [t.wEnc, t.bEnc, t.wDec, t.bDec]) {
            try store.putTensor(run: run, name: "\(side).\(name)", shape: tensor.shape, values: tensor.data)
        }
    }

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
        return Transcoder(wEnc: ts[0], bEnc: ts[1], wDec: ts[2], bDec: ts[3], activation: activation)
    }
}
