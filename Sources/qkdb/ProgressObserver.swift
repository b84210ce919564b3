import CSignal
import Foundation
import QKAnalysis
import QKTrain

/// Draws one progress bar per pipeline stage on stderr and prints each stage's summary line.
final class ProgressObserver: PipelineObserver {
    private var bar: ProgressBar?
    /// (stage, seconds) in the order stages finished, for the closing table.
    private(set) var timings: [(stage: String, seconds: Double)] = []

    func stageStarted(_ stage: String, total: Double, unit: String) {
        bar = ProgressBar(stage, total: total, unit: unit)
    }

    func stageProgress(_ done: Double, _ detail: String) { bar?.update(done, detail) }

    func stageFinished(_ stage: String, seconds: Double, summary: String) {
        bar?.finish(summary)
        bar = nil
        timings.append((stage, seconds))
    }
}

/// Ctrl-C sets a flag the trainer checks every step (so it can write a checkpoint and stop
/// cleanly); a second Ctrl-C exits at once.
/// Ctrl-C during training: the first one asks the trainer to checkpoint and stop, a second one
/// exits at once (130). The handler is C (`CSignal`) and only bumps an atomic counter.
enum Interrupt {
    static func flag() -> CancellationFlag {
        qk_sigint_install()
        return CancellationFlag(polling: { qk_sigint_count() > 0 })
    }
}
