/// Process-wide allocator setting for long runs of same-sized forward passes.
///
/// Each MiniLM batch allocates ~150 MB of activations and captures. glibc serves blocks that big
/// with fresh `mmap`s and unmaps them on free, so every batch paid ~25k page faults and the
/// kernel's zeroing of every page. Raising the mmap and trim thresholds keeps freed blocks in the
/// heap for the next batch instead. Call once from a command's entry point; a no-op off glibc.
public enum AllocatorTuning {
    public static func reuseLargeBlocks() {
        #if os(Linux) && canImport(Glibc)
        // <malloc.h>'s parameter numbers (not exported by Swift's Glibc module).
        let trimThreshold: Int32 = -1, topPad: Int32 = -2, mmapThreshold: Int32 = -3
        _ = glibcMallopt(mmapThreshold, 1 << 30)
        _ = glibcMallopt(trimThreshold, Int32.max)
        _ = glibcMallopt(topPad, 64 << 20)
        #endif
    }
}

#if os(Linux) && canImport(Glibc)
/// glibc's `int mallopt(int param, int value)`.
@_silgen_name("mallopt")
private func glibcMallopt(_ param: Int32, _ value: Int32) -> Int32
#endif
