import Foundation
import QKAnalysis

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
enum Interrupt {
    nonisolated(unsafe) static var flag: (() -> Void)?
    nonisolated(unsafe) static var count = 0

    static func install(_ onInterrupt: @escaping () -> Void) {
        flag = onInterrupt
        signal(SIGINT) { _ in
            Interrupt.count += 1
            if Interrupt.count > 1 { _exit(130) }
            Interrupt.flag?()
        }
    }
}
