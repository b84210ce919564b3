/// Everything that changes during a step-1 run. A checkpoint is exactly this plus the options,
/// so resuming from one continues bit-for-bit where the run stopped.
struct TrainerState: Equatable {
    var query: TranscoderParameters
    var key: TranscoderParameters
    var adamQuery: AdamState
    var adamKey: AdamState
    var step = 0
    var tokensSeen = 0
    /// Draws for resampling (the data order has its own generator inside the stream).
    var rng: TrainingRandom
    var stream: SequenceStream.State
    /// Current λ of each dictionary (moves when an L0 target is set).
    var lambdaQuery: Float
    var lambdaKey: Float
    var activityQuery: FeatureActivityTracker
    var activityKey: FeatureActivityTracker
    var nextResampleAt: Int
    /// Tokens per sequence (fixes the schedule's step count on resume).
    var sequenceLength: Int
}

extension TrainerState {
    /// Counts a trained batch of `tokens` tokens and which features its codes fired.
    mutating func record(_ r: ObjectiveResult, tokens: Int) {
        tokensSeen += tokens
        activityQuery.record(r.codesQ, tokenCount: tokensSeen)
        activityKey.record(r.codesK, tokenCount: tokensSeen)
    }
}
