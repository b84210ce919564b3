import ArgumentParser
import Foundation
import QKModels
import QKTrain
import QKAnalysis

/// Options shared by `qkdb run` and `qkdb train`: what to decompose and how to train step 1.
struct PipelineArguments: ParsableArguments {
    @Option(help: "Model directory (config.json + model.safetensors) or .gguf file.")
    var model: String = "models/all-MiniLM-L6-v2"

    @Option(help: "Corpus: a .txt/.jsonl file or a directory of them (packed into --context-token sequences).")
    var corpus: String?

    @Option(help: "Pre-tokenized [n, ctx] sequences (.npy or .safetensors tensor `tokens`) instead of --corpus.")
    var tokens: String?

    @Option(help: "Tokens per sequence.")
    var context: Int = 128

    @Option(help: "Prepend the model's BOS token on decoders (BERT always adds [CLS]). Default: yes, except for GGUF files that say not to (SmolLM2).")
    var bos: HarvestCommand.YesNo?

    @Option(help: "Read at most this many packed sequences from the corpus.")
    var maxSequences: Int?

    @Option(help: "Features per dictionary.")
    var dHidden: Int = 1536

    @Option(help: "Sparsity penalty λ (sqrt penalty weighted by decoder norm), both dictionaries.")
    var sparsity: Float?

    @Option(help: "Adapt λ toward this mean number of active features per token. Default: chosen from the data by a short sweep before training (see `qkdb sweep`), unless --sparsity or --top-k is given.")
    var l0Target: Double?

    @Option(help: "Training tokens of each point of the sparsity sweep that chooses the L0 target (default: 6% of --train-tokens, at least 50000).")
    var sweepTokens: Int?

    @Option(help: "Use TopK activations with this k instead of ReLU + penalty.")
    var topK: Int?

    @Option(help: "Tokens to train step 1 on.")
    var trainTokens: Int = 2_500_000

    @Option(help: "Sequences per optimiser step.")
    var batch: Int = 8

    @Option(help: "Adam learning rate.")
    var lr: Float = 1e-3

    @Flag(help: "Do not resample dead features.")
    var noResample = false

    @Flag(help: "Do not give the key dictionary its first-position feature (key feature 0, fixed to activation 1 at each sequence's first position).")
    var noFirstPositionFeature = false

    @Option(help: "After --train-tokens, fit the decoders alone (encoders frozen, no sparsity penalty, 0.3 × --lr) for this fraction of --train-tokens more; 0 turns it off.")
    var decoderFit: Double = 0.1

    @Option(help: "Weight of the decoder fit's pair-map term: a mask is trained on the frozen codes as step 2 trains one, and the fit also lowers the KL of the pruned map it keeps; 0 fits the reconstruction alone. Not on RoPE models.")
    var pairFitWeight: Float = 6

    @Option(help: "A feature that has not fired for this many training tokens is dead, and dead features are checked for (and resampled) every this many tokens (default: 100000, or a fifth of --train-tokens if smaller; checked every 25000 tokens or the window if smaller).")
    var deadWindow: Int?

    @Option(help: "Random seed (data order, initialisation); the same seed reproduces a run bit-for-bit.")
    var seed: UInt64 = 0

    /// The options for one layer; `model` (once loaded) settles an unset `--bos`.
    func options(layer: Int, model loaded: (any TransformerModel)? = nil) -> PipelineOptions {
        var o = PipelineOptions(model: model, layer: layer)
        o.corpus = corpus ?? (tokens == nil ? "data/corpus/fortunes.jsonl" : nil)
        o.tokens = tokens
        o.context = context
        o.bos = bos.map { $0 == .yes } ?? loaded.map(prependsBOSByDefault) ?? true
        o.maxSequences = maxSequences
        o.seed = seed
        o.training.dHidden = dHidden
        if let sparsity { o.training.objective.lambdaQ = sparsity; o.training.objective.lambdaK = sparsity }
        o.training.l0Target = l0Target
        if let topK { o.training.queryActivation = .topK(topK); o.training.keyActivation = .topK(topK) }
        o.sparsityChoice = topK != nil ? .topK : l0Target != nil ? .l0Target : sparsity != nil ? .sparsity : .fromData
        if o.sparsityChoice == .fromData {
            o.sweep = SparsitySweepOptions(tokensPerPoint: sweepTokens ?? SparsitySweepOptions.tokensPerPoint(trainTokens: trainTokens))
        }
        o.training.trainTokens = trainTokens
        o.training.warmupsAtMostAQuarter = true
        o.training.batchSequences = batch
        o.training.learningRate = lr
        o.training.resample = !noResample
        o.training.firstPositionKeyFeature = !noFirstPositionFeature
        o.training.decoderFitFraction = decoderFit
        o.training.pairFitWeight = pairFitWeight
        // A feature is dead after `deadWindow` silent tokens. The default (100k tokens, at most a
        // fifth of the budget) lets short runs resample too: a window longer than the run never fires.
        let window = deadWindow ?? min(o.training.deadWindowTokens, max(1000, trainTokens / 5))
        o.training.deadWindowTokens = window
        o.training.resampleEveryTokens = min(o.training.resampleEveryTokens, window)
        return o
    }
}

/// Step-2 options shared by `qkdb run` and `qkdb mask`.
struct MaskArguments: ParsableArguments {
    @Option(help: "Mask penalty μ on Σ sqrt(m + ε). Default: chosen from the data, the largest μ whose pruned map keeps its KL on the mask-training sequences within 1.4 × the unmasked map's (plain layers; RoPE layers keep 1.35e-6).")
    var penalty: Float?

    @Option(help: "Mask entries below this are pruned to exactly zero.")
    var threshold: Float?

    @Option(help: "Mask-training epochs.")
    var maskEpochs: Int?

    @Option(help: "Training sequences the mask is trained on.")
    var maskSequences: Int?

    @Option(help: "Adam learning rate of the mask.")
    var maskLr: Float?

    @Option(help: "ε in the mask penalty Σ sqrt(m + ε): larger lets pruned entries come back.")
    var maskEpsilon: Float?

    func apply(to o: inout PipelineOptions) {
        if let penalty { o.mask.penalty = penalty; o.maskPenaltyFromData = false }
        else if o.maskPenaltyFromData == nil { o.maskPenaltyFromData = true }
        if let threshold { o.mask.threshold = threshold }
        if let maskEpochs { o.mask.epochs = maskEpochs }
        if let maskSequences { o.maskSequences = maskSequences }
        if let maskLr { o.mask.learningRate = maskLr }
        if let maskEpsilon { o.mask.epsilon = maskEpsilon }
    }
}
