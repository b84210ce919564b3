import Foundation

/// How an L0 target moves λ after each step (`TrainingOptions.l0Target`).
///
/// Above the target λ rises by exp(rate·(L0 − T)/T), fast while codes are dense; below it falls by
/// exp(rate·ln(L0/T)), at most 3·rate a step. The rise overshoots after the penalty warm-up (L0
/// dips far below T, and the dip's resampling is part of why long runs end where they do: holding
/// λ through the warm-up ended worse, DESIGN §4), but the old linear fall of at most `rate` a step
/// took ~1,000 steps to climb out, so a 300k-token MiniLM run ended inside the dip at query L0 0.0
/// with KL 1.31, worse than the mean pattern. The log-ratio fall climbs out ~3× sooner.
public enum L0Controller {
    public static func next(lambda: Float, l0: Double, target: Double, rate: Double) -> Float {
        let e = l0 >= target ? (l0 - target) / target : max(-3, log(max(l0, 1e-3) / target))
        return Float(min(10, max(1e-9, Double(lambda) * exp(rate * e))))
    }
}
