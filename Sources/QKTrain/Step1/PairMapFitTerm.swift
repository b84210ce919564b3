import Foundation
import QKTensor

/// The decoder fit's pair-map term: β · KL(P ‖ P̂[pruned pair map]) as a function of both decoders.
///
/// Step 2 keeps only the few query-feature × key-feature × head entries of the bilinear map that
/// carry the pattern; whatever the dropped entries contributed is lost. The reconstruction terms of
/// step 1 cannot see that loss. This term can: it is built once at the start of the decoder fit
/// (`TrainingOptions.pairFitWeight`), while the encoders are frozen, so the codes it sees do not
/// change afterwards:
///
/// 1. its sequences are encoded once and a mask is trained on them exactly as step 2 trains one
///    (`MaskTrainer`, with step 2's options), then pruned; the entries it keeps, and their mask
///    values m, are fixed from then on;
/// 2. every fit step rebuilds those entries' values from the current decoders,
///    `M[i,j,h] = <W_decQ[i, h], W_decK[j, g(h)]> / sqrt(d_head)`, and `B` likewise, evaluates the
///    pruned map's KL on a batch of the sequences with step 2's kernel, and adds its gradient:
///
///        dW_decQ[i, h]    += β · m · dKL/dW[i,j,h] · W_decK[j, g(h)] / sqrt(d_head)
///        dW_decK[j, g(h)] += β · m · dKL/dW[i,j,h] · W_decQ[i, h]    / sqrt(d_head)
///
///    (`B`'s own gradient is left out: b_decQ and W_decK feel B only through the reconstruction
///    terms).
///
/// Step 2 itself runs afterwards as always, from a fresh mask at 1, on its own sequences: this
/// term only moves the decoders toward ones whose sparse pair map loses less.
final class PairMapFitTerm {
    let objective: PairMapObjective
    let weight: Float
    let geometry: AttentionGeometry
    /// The kept entries: store slot, where their two decoder blocks start (query row i's head-h
    /// block in W_decQ, key row j's kv-head block in W_decK) and mask value.
    private var slot: [Int] = [], queryOffset: [Int] = [], keyOffset: [Int] = [], mask: [Float] = []
    private let batchSequences: Int
    private var rng: SplitMix64

    var keptEntries: Int { slot.count }

    /// - Parameters:
    ///   - sequences: the term's sequences, encoded with the (frozen) encoders of `query`/`key`.
    convenience init(query: Transcoder, key: Transcoder, geometry: AttentionGeometry, sequences: [PairMapSequence],
                     maskOptions: MaskTrainingOptions, weight: Float, batchSequences: Int, seed: UInt64) throws {
        let objective = try PairMapObjective(query: query, key: key, geometry: geometry, training: sequences,
                                             threads: maskOptions.threads)
        let trainer = try MaskTrainer(objective: objective, options: maskOptions)
        trainer.train()
        self.init(objective: objective, geometry: geometry, mask: trainer.prunedMask, weight: weight,
                  batchSequences: batchSequences, seed: seed)
    }

    /// The term over `objective`'s sequences with a given pruned mask (one value per entry; 0 = dropped).
    init(objective: PairMapObjective, geometry: AttentionGeometry, mask pruned: [Float], weight: Float,
         batchSequences: Int, seed: UInt64) {
        self.objective = objective; self.weight = weight; self.geometry = geometry; self.batchSequences = batchSequences
        rng = SplitMix64(seed: seed ^ 0x5041_4952)   // "PAIR": its own stream of batches
        // Dropped entries hold W = 0 from here on; only the kept ones are rewritten each step.
        objective.setMap(mask: pruned)
        let index = objective.index, h = geometry.nHead
        for pair in 0..<index.pairCount {
            for x in 0..<h {
                let e = index.entry(pair: pair, head: x, heads: h)
                guard pruned[e] > 0 else { continue }
                slot.append(objective.slot.map { Int($0[e]) } ?? e)
                queryOffset.append(Int(index.pairQuery[pair]) * geometry.qWidth + x * geometry.dHead)
                keyOffset.append(Int(index.pairKey[pair]) * geometry.kWidth + geometry.kvHead(of: x) * geometry.dHead)
                mask.append(pruned[e])
            }
        }
    }

    /// Adds β · ∇KL of the pruned map on the next batch of the term's sequences to the decoder
    /// gradients (W_dec only; see the type's doc) and returns that KL.
    func addGradient(query: TranscoderParameters, key: TranscoderParameters,
                     gradQ: inout TranscoderParameters, gradK: inout TranscoderParameters) -> Double {
        let count = objective.training.count
        let batch = (0..<min(batchSequences, count)).map { _ in Int(rng.next() % UInt64(count)) }
        return addGradient(query: query, key: key, batch: batch, gradQ: &gradQ, gradK: &gradK)
    }

    /// The same on the given sequences of the term (indices into `objective.training`).
    func addGradient(query: TranscoderParameters, key: TranscoderParameters, batch: [Int],
                     gradQ: inout TranscoderParameters, gradK: inout TranscoderParameters) -> Double {
        let dh = geometry.dHead
        let scale = 1 / Float(dh).squareRoot()
        query.wDec.withUnsafeBufferPointer { dq in
            key.wDec.withUnsafeBufferPointer { dk in
                for n in 0..<slot.count {
                    objective.store[slot[n]] = PairMapWeights.entryValue(dq.baseAddress! + queryOffset[n], dk.baseAddress! + keyOffset[n],
                                                                         dHead: dh, scale: scale) * mask[n]
                }
            }
        }
        objective.weights.keyBias = PairMapWeights.keyBias(queryBias: query.bDec, keyDecoder: key.wDec,
                                                           keyWidth: key.dHidden, geometry: geometry)
        let kl = objective.meanKL(sequences: objective.training, batch: batch, plogp: objective.trainingPLogP,
                                  accumulateGradient: true)
        let threads = objective.threads, size = objective.storeSize
        objective.threadGrad.withUnsafeMutableBufferPointer { tg in
            query.wDec.withUnsafeBufferPointer { dq in
            key.wDec.withUnsafeBufferPointer { dk in
            gradQ.wDec.withUnsafeMutableBufferPointer { gq in
            gradK.wDec.withUnsafeMutableBufferPointer { gk in
                for n in 0..<slot.count {
                    var g: Float = 0
                    for t in 0..<threads { g += tg[t * size + slot[n]] }
                    let c = weight * g * mask[n] * scale
                    let qo = queryOffset[n], ko = keyOffset[n]
                    for d in 0..<dh {
                        gq[qo + d] += c * dk[ko + d]
                        gk[ko + d] += c * dq[qo + d]
                    }
                }
            }}}}
            // The kernels leave dKL/dW for every co-firing entry; the next batch starts from zero.
            tg.update(repeating: 0)
        }
        return kl
    }
}
