import Foundation
import QKStore

extension PipelineOptions {
    /// What makes two requests the same job for every layer: the options as asked for (before
    /// the sweep or μ search fill anything in), with the model named by its fingerprint rather
    /// than its path and the layer left out. `qkdb run` stores it with each run (`job`), so a
    /// rerun of the same command finds the layers already done.
    public func jobKey(fingerprint: String) -> String {
        var o = self
        o.model = ""; o.modelFingerprint = fingerprint; o.layer = 0; o.job = nil
        return String(UInt64(bitPattern: Checksum.of(Array(o.json().utf8))), radix: 16)
    }
}

/// How far an earlier attempt at one layer of a job got, found in the store by `(layer, job)`.
public enum LayerProgress: Equatable {
    /// Nothing stored: the layer starts from scratch.
    case notStarted
    /// Step 1 is stored (`trained`) or step 2 too (`masked`): the rest continues from run `id`.
    case partial(run: Int64, status: String)
    /// Done: nothing to do.
    case complete(run: Int64)

    /// The newest run of this layer and job in `store`.
    public static func of(layer: Int, job: String, in store: Store) throws -> LayerProgress {
        let mine = try store.runs().filter { info in
            info.spec.kind == .trained && info.spec.layer == layer
                && (try? PipelineOptions.from(json: info.spec.config))?.job == job
        }
        guard let last = mine.max(by: { $0.id < $1.id }) else { return .notStarted }
        return last.spec.status == "complete" ? .complete(run: last.id) : .partial(run: last.id, status: last.spec.status)
    }
}
