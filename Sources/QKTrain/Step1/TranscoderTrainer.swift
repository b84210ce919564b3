import Foundation
import QKTensor

/// What the trainer reports as it goes (the CLI renders it as a progress bar).
public struct TrainingProgress: Sendable {
    public var step: Int
    public var tokens: Int
    public var totalTokens: Int
    public var tokensPerSecond: Double
    public var loss: Double
    public var patternKL: Double
    public var l0Query: Double, l0Key: Double
    /// Features that fired within the dead-feature window.
    public var liveQuery: Int, liveKey: Int
    public var etaSeconds: Double
    public var lambdaQuery: Float, lambdaKey: Float
    /// What the trainer is doing beyond plain training (the decoder fit), for the progress line.
    public var phase: String? = nil
}

/// A flag the trainer checks once per step; once set (`cancel()`, or `polling` says so) `train`
/// writes its checkpoint and returns early with `completed == false`.
///
/// A signal handler must not call `cancel()` (it takes a lock); it sets something `polling`
/// reads instead — the command line's Ctrl-C is an atomic counter in C (`CSignal`):
///
///     let flag = CancellationFlag(polling: { qk_sigint_count() > 0 })
public final class CancellationFlag: @unchecked Sendable {
    private let lock = NSLock()
    private var value = false
    private let poll: (@Sendable () -> Bool)?
    public init(polling: (@Sendable () -> Bool)? = nil) { poll = polling }
    public func cancel() { lock.lock(); value = true; lock.unlock() }
    public var isCancelled: Bool {
        if poll?() == true { return true }
        lock.lock(); defer { lock.unlock() }
        return value
    }
}

/// The outcome of a step-1 run.
public struct TrainingResult: Sendable {
    public var query: Transcoder
    public var key: Transcoder
    /// Held-out metrics and per-feature firing counts (nil when the run was cancelled).
    public var evaluation: Step1Evaluation?
    public var completed: Bool
    public var steps: Int
    public var tokensSeen: Int
    public var tokensPerSecond: Double
    public var options: TrainingOptions
    public var geometry: AttentionGeometry
    public var layer: Int
    /// λ at the end (differs from the option when an L0 target moved it).
    public var lambdaQuery: Float, lambdaKey: Float
    /// Features resampled over the run, per dictionary.
    public var resampledQuery: Int, resampledKey: Int
    /// Features that fired within the last `deadWindowTokens` training tokens (the rest are dead).
    public var liveInWindowQuery: Int, liveInWindowKey: Int
    /// Where the checkpoint was written, when the run was cancelled and a path was given.
    public var checkpointPath: String?
    /// The weights in the training layout, for a run that continues from them (`startingFrom`).
    var parameters: (query: TranscoderParameters, key: TranscoderParameters)? = nil
}

/// Trains the query and key transcoders of one layer (DESIGN §4) from an `ActivationSource`.
///
///     let trainer = try TranscoderTrainer(options: opts, source: HarvestFileSource(path: "h.safetensors"))
///     let result = try trainer.train(progress: { print($0.tokens) })
///
/// Deterministic: the same options, seed and data give the same weights bit-for-bit on one machine
/// (threads split work by fixed ranges, and every reduction runs in a fixed order).
public final class TranscoderTrainer {
    public let options: TrainingOptions
    public let source: ActivationSource
    public var geometry: AttentionGeometry { source.geometry }

    public init(options: TrainingOptions, source: ActivationSource) throws {
        try options.validate()
        try source.geometry.validate()
        self.options = options; self.source = source
    }

    /// `startingFrom` (the sweep's path): begin at these weights instead of fresh ones, with fresh
    /// Adam moments and schedule; `resumeFrom` continues a checkpoint exactly instead.
    public func train(progress: ((TrainingProgress) -> Void)? = nil, cancel: CancellationFlag? = nil,
                      checkpointPath: String? = nil, resumeFrom: String? = nil) throws -> TrainingResult {
        try train(progress: progress, cancel: cancel, checkpointPath: checkpointPath, resumeFrom: resumeFrom, startingFrom: nil)
    }

    func train(progress: ((TrainingProgress) -> Void)?, cancel: CancellationFlag?, checkpointPath: String?, resumeFrom: String?,
               startingFrom: (query: TranscoderParameters, key: TranscoderParameters)?) throws -> TrainingResult {
        let o = options, g = geometry
        // OpenBLAS runs single-threaded inside the step (the trainer splits the work itself), but
        // keeps its threads while reading data, which may run the model (on-the-fly harvesting).
        let savedThreads = BLAS.threads
        defer { BLAS.setThreads(savedThreads) }

        var stream = SequenceStream(source: source, heldOut: o.heldOutSequences, blockSize: o.shuffleBlockSequences, seed: o.seed)
        let heldOut = try stream.readHeldOut()
        var state: TrainerState
        var pending: TrainingBatch? = nil
        if let resumeFrom {
            let (s, saved, savedGeometry) = try Step1Checkpoint.read(resumeFrom)
            var comparable = saved; comparable.trainTokens = o.trainTokens; comparable.progressEverySteps = o.progressEverySteps
            guard comparable == o else { throw TrainError("checkpoint \(resumeFrom): written with different training options; resume with the same ones") }
            guard savedGeometry == g, s.query.dOut == g.qWidth, s.key.dOut == g.kWidth,
                  s.query.dHidden == o.dHidden, s.key.dHidden == o.dHidden else {
                throw TrainError("checkpoint \(resumeFrom): written for a different attention layer shape")
            }
            try stream.restore(s.stream)
            state = s
        } else {
            let first = try nextBatch(&stream)
            pending = first
            state = initialState(first, stream: stream)
            if let w = startingFrom, w.query.dIn == state.query.dIn, w.query.dHidden == o.dHidden,
               w.query.dOut == g.qWidth, w.key.dOut == g.kWidth {
                state.query = w.query; state.key = w.key
                state.adamQuery = AdamState(like: w.query); state.adamKey = AdamState(like: w.key)
            }
        }
        let tokensPerStep = o.batchSequences * max(1, state.sequenceLength)
        let totalSteps = max(1, (o.trainTokens + tokensPerStep - 1) / tokensPerStep)
        let acts = (query: o.queryActivation, key: o.keyActivation)
        var gradQ = TranscoderParameters(zerosIn: state.query.dIn, hidden: o.dHidden, out: g.qWidth)
        var gradK = TranscoderParameters(zerosIn: state.key.dIn, hidden: o.dHidden, out: g.kWidth)
        var resampledQ = 0, resampledK = 0
        let started = Date()
        let tokensAtStart = state.tokensSeen
        var lastL0 = (0.0, 0.0)
        var lastResult = ObjectiveResult()
        // One progress bar over the training tokens and the decoder fit after them.
        let totalTokens = o.trainTokens + o.decoderFitTokens
        // Takes the state as an argument: capturing `state` would box it, and then the Adam
        // updates' overlapping accesses to its fields would trap at run time.
        func report(_ r: ObjectiveResult, _ state: TrainerState, _ lastL0: (Double, Double), phase: String? = nil, always: Bool = false) {
            guard let progress, always || state.step % max(1, o.progressEverySteps) == 0 || state.tokensSeen >= totalTokens else { return }
            let elapsed = Date().timeIntervalSince(started)
            let rate = elapsed > 0 ? Double(state.tokensSeen - tokensAtStart) / elapsed : 0
            progress(TrainingProgress(
                step: state.step, tokens: state.tokensSeen, totalTokens: totalTokens, tokensPerSecond: rate,
                loss: r.total, patternKL: r.klFull, l0Query: lastL0.0, l0Key: lastL0.1,
                liveQuery: state.activityQuery.liveCount(at: state.tokensSeen),
                liveKey: state.activityKey.liveCount(at: state.tokensSeen),
                etaSeconds: rate > 0 ? Double(max(0, totalTokens - state.tokensSeen)) / rate : 0,
                lambdaQuery: state.lambdaQuery, lambdaKey: state.lambdaKey, phase: phase))
        }

        // Cancelled: the checkpoint holds `resumable`, and the run returns it as its (partial) result.
        func stop(_ resumable: TrainerState) throws -> TrainingResult {
            if let checkpointPath { try Step1Checkpoint.write(resumable, options: o, geometry: g, to: checkpointPath) }
            return result(resumable, evaluation: nil, completed: false, started: started, tokensAtStart: tokensAtStart,
                          resampled: (resampledQ, resampledK), checkpointPath: checkpointPath)
        }

        while state.tokensSeen < o.trainTokens {
            if let cancel, cancel.isCancelled {
                state.stream = stream.state
                return try stop(state)
            }
            let batch = try takeBatch(&pending, &stream, blasThreads: savedThreads)
            guard batch.dModel == state.query.dIn, batch.dModel == state.key.dIn else {
                throw TrainError("layer \(source.layer): activations are \(batch.dModel) wide but the transcoders read \(state.query.dIn)")
            }
            state.step += 1
            let f = o.penaltyFactor(step: state.step, totalSteps: totalSteps)
            let r = try objectiveStep(state, batch: batch, lambda: (state.lambdaQuery * f, state.lambdaKey * f), gradQ: &gradQ, gradK: &gradK)
            // Clip each dictionary's whole gradient to norm ≤ clipNorm.
            func clip(_ grad: inout TranscoderParameters) {
                let norm = Float(grad.squaredNorm().squareRoot())
                if o.clipNorm > 0 && norm > o.clipNorm { grad.scale(by: o.clipNorm / norm) }
            }
            clip(&gradQ); clip(&gradK)
            let lr = o.learningRate(step: state.step, totalSteps: totalSteps)
            state.adamQuery.update(&state.query, gradient: gradQ, lr: lr, step: state.step)
            state.adamKey.update(&state.key, gradient: gradK, lr: lr, step: state.step)
            state.record(r, tokens: batch.tokens)
            lastL0 = (r.codesQ.meanL0, r.codesK.meanL0)

            if let target = o.l0Target {
                func adapt(_ l: inout Float, _ l0: Double) { l = L0Controller.next(lambda: l, l0: l0, target: target, rate: o.l0AdaptRate) }
                if o.queryActivation == .relu { adapt(&state.lambdaQuery, lastL0.0) }
                if o.keyActivation == .relu { adapt(&state.lambdaKey, lastL0.1) }
            }

            if o.resample && state.tokensSeen >= state.nextResampleAt
                && Double(state.tokensSeen) <= o.resampleUntilFraction * Double(o.trainTokens) {
                let every = o.resampleEveryTokens > 0 ? o.resampleEveryTokens : o.deadWindowTokens
                state.nextResampleAt = state.tokensSeen + every
                let deadQ = state.activityQuery.dead(at: state.tokensSeen)
                // The first-position feature is set, not encoded: never restarted, and its fitted
                // encoder row does not count towards the scale restarted encoders get.
                let fixedK = o.keyFirstPositionFeature
                let deadK = state.activityKey.dead(at: state.tokensSeen).filter { $0 != fixedK }
                if !deadQ.isEmpty {
                    let live = state.activityQuery.lastFired.map { state.tokensSeen - $0 < o.deadWindowTokens }
                    let restarted = DeadFeatureResampler.resample(&state.query, features: deadQ, codes: r.codesQ, x: batch.x,
                                                                  target: batch.q, tokenError: r.tokenErrorQ, live: live, rng: &state.rng)
                    state.adamQuery.reset(features: restarted)
                    for i in restarted { state.activityQuery.lastFired[i] = state.tokensSeen }
                    resampledQ += restarted.count
                }
                if !deadK.isEmpty {
                    var live = state.activityKey.lastFired.map { state.tokensSeen - $0 < o.deadWindowTokens }
                    if let f = fixedK { live[f] = false }
                    let restarted = DeadFeatureResampler.resample(&state.key, features: deadK, codes: r.codesK, x: batch.x,
                                                                  target: batch.k, tokenError: r.tokenErrorK, live: live, rng: &state.rng)
                    state.adamKey.reset(features: restarted)
                    for i in restarted { state.activityKey.lastFired[i] = state.tokensSeen }
                    resampledK += restarted.count
                }
            }

            report(r, state, lastL0)
            lastResult = r
        }

        // The decoder fit (`TrainingOptions.decoderFitFraction`): encoders frozen, no penalty, and
        // with `pairFitWeight` the pair-map term. A run cancelled during the fit checkpoints the
        // state at its start (the term is built from data read there), so resuming redoes the fit.
        var fitStart = state
        fitStart.stream = stream.state
        var pairTerm: PairMapFitTerm? = nil
        if state.tokensSeen < totalTokens && o.hasPairFitTerm(geometry: g) {
            report(lastResult, state, lastL0, phase: "decoder fit: training the pair-map term's mask", always: true)
            pairTerm = try buildPairTerm(state, stream: &stream, pending: &pending, blasThreads: savedThreads)
        }
        while state.tokensSeen < totalTokens {
            if let cancel, cancel.isCancelled { return try stop(fitStart) }
            let batch = try takeBatch(&pending, &stream, blasThreads: savedThreads)
            state.step += 1
            let r = try objectiveStep(state, batch: batch, lambda: (0, 0), gradQ: &gradQ, gradK: &gradK)
            _ = pairTerm?.addGradient(query: state.query, key: state.key, gradQ: &gradQ, gradK: &gradK)
            let lr = o.learningRate * (o.decoderFitLearningRateFactor ?? 1)
            state.adamQuery.updateDecoder(&state.query, gradient: gradQ, lr: lr, step: state.step)
            state.adamKey.updateDecoder(&state.key, gradient: gradK, lr: lr, step: state.step)
            state.record(r, tokens: batch.tokens)
            lastL0 = (r.codesQ.meanL0, r.codesK.meanL0)
            report(r, state, lastL0, phase: "decoder fit")
        }
        state.stream = stream.state
        let trainedFor = Date().timeIntervalSince(started)
        BLAS.setThreads(1)
        var evaluation = HeldOutEvaluator.evaluate(query: state.query, key: state.key, activations: acts, sequences: heldOut,
                                                   geometry: g, weights: o.objective, keyFirstPosition: o.keyFirstPositionFeature,
                                                   chunk: o.batchSequences, threads: o.threads)
        evaluation.metrics.tokensPerSecond = trainedFor > 0 ? Double(state.tokensSeen - tokensAtStart) / trainedFor : 0
        return result(state, evaluation: evaluation, completed: true, started: started, tokensAtStart: tokensAtStart,
                      resampled: (resampledQ, resampledK), checkpointPath: nil)
    }

    /// The decoder fit's pair-map term, from the next `pairFitSequences` training sequences
    /// encoded with the (now frozen) encoders.
    private func buildPairTerm(_ state: TrainerState, stream: inout SequenceStream, pending: inout TrainingBatch?,
                               blasThreads: Int) throws -> PairMapFitTerm {
        let o = options, g = geometry
        let query = state.query.transcoder(activation: o.queryActivation)
        let key = state.key.transcoder(activation: o.keyActivation, firstPositionFeature: o.keyFirstPositionFeature)
        var sequences: [PairMapSequence] = []
        let wanted = o.pairFitSequences ?? 0
        // The encoding GEMMs and any on-the-fly harvesting get the caller's BLAS threads.
        BLAS.setThreads(blasThreads)
        defer { BLAS.setThreads(1) }
        while sequences.count < wanted {
            let batch: TrainingBatch
            if let p = pending { batch = p; pending = nil } else { batch = try nextBatch(&stream) }
            sequences += PairMapSequence.sequences(from: batch, nHead: g.nHead, query: query, key: key)
        }
        var mask = o.pairFitMask ?? MaskTrainingOptions()
        mask.seed = o.seed
        return try PairMapFitTerm(query: query, key: key, geometry: g, sequences: Array(sequences.prefix(wanted)),
                                  maskOptions: mask, weight: o.pairFitWeight ?? 0, batchSequences: mask.batchSequences, seed: o.seed)
    }

    /// The objective and its gradient (into `gradQ`/`gradK`, zeroed first) for one batch, with
    /// sparsity weights `lambda`.
    private func objectiveStep(_ state: TrainerState, batch: TrainingBatch, lambda: (Float, Float),
                               gradQ: inout TranscoderParameters, gradK: inout TranscoderParameters) throws -> ObjectiveResult {
        gradQ.zero(); gradK.zero()
        var w = options.objective
        w.lambdaQ = lambda.0; w.lambdaK = lambda.1
        let r = withUnsafeMutablePointer(to: &gradQ) { gq in
            withUnsafeMutablePointer(to: &gradK) { gk in
                Step1Objective.evaluate(query: state.query, key: state.key, activations: (options.queryActivation, options.keyActivation),
                                        batch: batch, geometry: geometry, weights: w, gradQ: gq, gradK: gk,
                                        keyFirstPosition: options.keyFirstPositionFeature, threads: options.threads)
            }
        }
        guard r.total.isFinite else {
            throw TrainError("layer \(source.layer) step \(state.step): the loss became \(r.total); lower --lr or the sparsity")
        }
        return r
    }

    private func result(_ s: TrainerState, evaluation: Step1Evaluation?, completed: Bool, started: Date, tokensAtStart: Int,
                        resampled: (Int, Int), checkpointPath: String?) -> TrainingResult {
        let elapsed = Date().timeIntervalSince(started)
        return TrainingResult(
            query: s.query.transcoder(activation: options.queryActivation),
            key: s.key.transcoder(activation: options.keyActivation, firstPositionFeature: options.keyFirstPositionFeature),
            evaluation: evaluation, completed: completed, steps: s.step, tokensSeen: s.tokensSeen,
            tokensPerSecond: evaluation?.metrics.tokensPerSecond ?? (elapsed > 0 ? Double(s.tokensSeen - tokensAtStart) / elapsed : 0),
            options: options, geometry: geometry, layer: source.layer, lambdaQuery: s.lambdaQuery, lambdaKey: s.lambdaKey,
            resampledQuery: resampled.0, resampledKey: resampled.1,
            liveInWindowQuery: s.activityQuery.liveCount(at: s.tokensSeen), liveInWindowKey: s.activityKey.liveCount(at: s.tokensSeen),
            checkpointPath: checkpointPath, parameters: (s.query, s.key))
    }

    /// The batch read ahead at start-up if there is one, else the next from the stream (read with
    /// the caller's BLAS threads, which may run the model); BLAS is single-threaded afterwards.
    private func takeBatch(_ pending: inout TrainingBatch?, _ stream: inout SequenceStream, blasThreads: Int) throws -> TrainingBatch {
        defer { BLAS.setThreads(1) }
        if let p = pending { pending = nil; return p }
        BLAS.setThreads(blasThreads)
        return try nextBatch(&stream)
    }

    private func nextBatch(_ stream: inout SequenceStream) throws -> TrainingBatch {
        var seqs: [TrainingBatch] = []
        seqs.reserveCapacity(options.batchSequences)
        for _ in 0..<options.batchSequences { seqs.append(try stream.next()) }
        let first = seqs[0]
        for s in seqs where s.length != first.length || s.dModel != first.dModel {
            throw TrainError("layer \(source.layer): sequences of \(first.length) and \(s.length) tokens (width \(first.dModel) and \(s.dModel)) in one batch; pack the corpus to one fixed context length")
        }
        return TrainingBatch.stacking(seqs)
    }

    /// Fresh weights (see `TranscoderParameters.init`) with b_dec from the first batch's means.
    private func initialState(_ first: TrainingBatch, stream: SequenceStream) -> TrainerState {
        let o = options, g = geometry
        var rng = TrainingRandom(seed: o.seed)
        func columnMean(_ v: [Float], width: Int) -> [Float] {
            let rows = v.count / width
            var m = [Double](repeating: 0, count: width)
            for r in 0..<rows { for c in 0..<width { m[c] += Double(v[r * width + c]) } }
            return m.map { Float($0 / Double(max(rows, 1))) }
        }
        var ss = 0.0
        for v in first.x { ss += Double(v) * Double(v) }
        let inputNorm = Float((ss / Double(max(first.tokens, 1))).squareRoot())
        var q = TranscoderParameters(dIn: first.dModel, hidden: o.dHidden, out: g.qWidth,
                                     dataMean: columnMean(first.q, width: g.qWidth), inputNorm: inputNorm, rng: &rng)
        var k = TranscoderParameters(dIn: first.dModel, hidden: o.dHidden, out: g.kWidth,
                                     dataMean: columnMean(first.k, width: g.kWidth), inputNorm: inputNorm, rng: &rng)
        if o.initialDensity > 0 {
            q.calibrateEncoderBias(x: first.x, rows: first.tokens, density: o.initialDensity)
            k.calibrateEncoderBias(x: first.x, rows: first.tokens, density: o.initialDensity)
        }
        if let f = o.keyFirstPositionFeature {
            // The first-position feature starts where it ends up: the mean first-position key.
            var firstKeys = [Float](repeating: 0, count: g.kWidth)
            for s in 0..<first.sequences {
                for c in 0..<g.kWidth { firstKeys[c] += first.k[s * first.length * g.kWidth + c] / Float(first.sequences) }
            }
            k.setFirstPositionFeature(f, meanFirstKey: firstKeys, x: first.x, rows: first.tokens, sequenceLength: first.length)
        }
        let every = o.resampleEveryTokens > 0 ? o.resampleEveryTokens : o.deadWindowTokens
        return TrainerState(query: q, key: k, adamQuery: AdamState(like: q), adamKey: AdamState(like: k),
                            rng: rng, stream: stream.state,
                            lambdaQuery: o.objective.lambdaQ, lambdaKey: o.objective.lambdaK,
                            activityQuery: FeatureActivityTracker(features: o.dHidden, window: o.deadWindowTokens),
                            activityKey: FeatureActivityTracker(features: o.dHidden, window: o.deadWindowTokens),
                            nextResampleAt: every, sequenceLength: first.length)
    }
}
