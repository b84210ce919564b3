/// What the pipeline tells whoever drives it (the CLI draws progress bars from this).
public protocol PipelineObserver: AnyObject {
    /// A stage begins; `total` is in `unit`s (tokens, steps, batches).
    func stageStarted(_ stage: String, total: Double, unit: String)
    func stageProgress(_ done: Double, _ detail: String)
    /// A stage ends, with one line of summary.
    func stageFinished(_ stage: String, seconds: Double, summary: String)
}

/// An observer that ignores everything (tests, scripted use).
public final class SilentObserver: PipelineObserver {
    public init() {}
    public func stageStarted(_ stage: String, total: Double, unit: String) {}
    public func stageProgress(_ done: Double, _ detail: String) {}
    public func stageFinished(_ stage: String, seconds: Double, summary: String) {}
}
