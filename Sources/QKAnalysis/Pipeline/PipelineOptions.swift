import Foundation
import QKModels
import QKTrain

/// Everything a run is made from. Stored as the run's `config` JSON, so `qkdb mask` and
/// `qkdb eval` can rebuild the exact same data (same corpus, packing, split and shuffle) later.
public struct PipelineOptions: Codable, Sendable, Equatable {
    /// Model directory (HF config.json + safetensors) or `.gguf` file.
    public var model: String
    /// The model's content when the run was trained (`ModelFingerprint`), so a later command can
    /// find the model elsewhere and refuse a different one (`RunModel`); nil in older runs.
    public var modelFingerprint: String? = nil
    public var layer: Int
    /// A `.txt`/`.jsonl` file or directory of them, packed into `context`-token sequences.
    public var corpus: String?
    /// Or a pre-tokenized `[n, ctx]` array (`.npy` / `.safetensors` tensor `tokens`).
    public var tokens: String?
    public var context: Int = 128
    /// Prepend BOS on decoders (BERT always has [CLS]).
    public var bos: Bool = true
    /// Cap on packed sequences read from the corpus (nil: all).
    public var maxSequences: Int? = nil
    /// Fraction of sequences held out (the tail of the corpus, before shuffling).
    public var heldOutFraction: Double = 0.05
    /// At most this many held-out sequences are used for metrics, statistics and examples.
    public var heldOutSequences: Int = 192
    /// Training sequences step 2 trains its mask on (their patterns are held in memory).
    public var maskSequences: Int = 1024
    /// Held-out sequences evaluation patches patterns into.
    public var evalSequences: Int = 64
    public var seed: UInt64 = 0
    public var training: TrainingOptions = TrainingOptions()
    /// How step 1's sparsity is set. `.fromData`: before training, a sweep (`SweepStage`) traces
    /// the frontier and its rule sets `training.l0Target`, which the stored config then holds.
    /// nil (configs stored before the sweep existed, library use): `training` as given.
    public var sparsityChoice: SparsityChoice? = nil
    /// Step 2's μ is chosen from the data (`MaskPenaltySearch`, starting from `mask.penalty`) unless
    /// pinned by `--penalty`; nil (configs stored before the search existed, library use): `mask` as given.
    public var maskPenaltyFromData: Bool? = nil
    /// The sweep's settings when `sparsityChoice == .fromData` (nil: `SparsitySweepOptions()`).
    public var sweep: SparsitySweepOptions? = nil
    public var mask: MaskTrainingOptions = MaskTrainingOptions()
    /// The job this run is one layer of (`jobKey`), when `qkdb run` made it: a rerun of the same
    /// command continues the layers not yet complete. nil for runs made otherwise or before.
    public var job: String? = nil

    public init(model: String, layer: Int) { self.model = model; self.layer = layer }

    public func json() -> String {
        let e = JSONEncoder(); e.outputFormatting = [.sortedKeys]
        return String(decoding: (try? e.encode(self)) ?? Data("{}".utf8), as: UTF8.self)
    }

    public static func from(json: String) throws -> PipelineOptions {
        do { return try JSONDecoder().decode(PipelineOptions.self, from: Data(json.utf8)) }
        catch { throw PipelineError("run config is not a qkdb pipeline configuration (\(error))") }
    }

    /// Checks everything that can be checked before any work starts (including the step-1 training
    /// options), so a command can refuse bad input before it creates a store file.
    public func validate() throws {
        try training.validate()
        try mask.validate()
        try sweep?.validate()
        guard (corpus == nil) != (tokens == nil) else { throw PipelineError("give exactly one of --corpus or --tokens") }
        guard context >= 2 else { throw PipelineError("--context must be at least 2, got \(context)") }
        guard heldOutFraction > 0, heldOutFraction < 1 else { throw PipelineError("held-out fraction must lie in (0, 1)") }
        guard heldOutSequences >= 1, maskSequences >= 1, evalSequences >= 1 else {
            throw PipelineError("sequence counts for held-out, mask and eval must be at least 1")
        }
    }
}

/// A pipeline error: one line naming what is wrong.
public struct PipelineError: Error, CustomStringConvertible, Sendable {
    public let message: String
    public init(_ message: String) { self.message = message }
    public var description: String { message }
}
