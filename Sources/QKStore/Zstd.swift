import CZstd

/// zstd compression with reusable contexts. Frames carry zstd's own content checksum and the
/// decompressed size, so a damaged blob is rejected while decoding, never returned as wrong data.
/// One instance per store connection (contexts are not thread-safe).
final class Zstd {
    /// Made on first compression: a store opened only to read never needs one (and a cold
    /// query pays for every allocation at open).
    private var cctxStorage: OpaquePointer?
    private let dctx: OpaquePointer
    let level: Int32

    init(level: Int32 = 6) {
        dctx = ZSTD_createDCtx()
        self.level = level
    }

    private var cctx: OpaquePointer {
        if let c = cctxStorage { return c }
        let c: OpaquePointer = ZSTD_createCCtx()
        ZSTD_CCtx_setParameter(c, ZSTD_c_compressionLevel, level)
        ZSTD_CCtx_setParameter(c, ZSTD_c_checksumFlag, 1)
        cctxStorage = c
        return c
    }

    deinit {
        if let c = cctxStorage { ZSTD_freeCCtx(c) }
        ZSTD_freeDCtx(dctx)
    }

    func compress(_ src: UnsafeRawBufferPointer) -> [UInt8] {
        let bound = ZSTD_compressBound(src.count)
        var out = [UInt8](repeating: 0, count: bound)
        let n = out.withUnsafeMutableBytes { dst in
            ZSTD_compress2(cctx, dst.baseAddress, bound, src.baseAddress, src.count)
        }
        // Compression of in-memory data into a bound-sized buffer cannot fail short of a zstd bug.
        if ZSTD_isError(n) != 0 { return [] }
        out.removeSubrange(n...)
        return out
    }

    /// Like `compress(_:)` but without zero-filling the bound-sized buffer first: for the Parquet
    /// writer's megabyte pages, where that fill (a per-byte loop in debug builds) would dominate.
    func compressFrame(_ src: UnsafeRawBufferPointer) -> [UInt8] {
        let bound = ZSTD_compressBound(src.count)
        return [UInt8](unsafeUninitializedCapacity: bound) { dst, initialized in
            let n = ZSTD_compress2(cctx, dst.baseAddress, bound, src.baseAddress, src.count)
            // As above: into a bound-sized buffer, only a zstd bug could fail.
            precondition(ZSTD_isError(n) == 0, "zstd failed: \(String(cString: ZSTD_getErrorName(n)))")
            initialized = n
        }
    }

    func compress<T>(_ values: [T]) -> [UInt8] {
        values.withUnsafeBytes { compress($0) }
    }

    /// Decompresses a frame that must hold exactly `expectedBytes` bytes into `dst`.
    /// `what` names the blob for the error message.
    func decompress(_ src: [UInt8], into dst: UnsafeMutableRawBufferPointer, what: @autoclosure () -> String) throws {
        let size = src.withUnsafeBytes { ZSTD_getFrameContentSize($0.baseAddress, $0.count) }
        guard size == UInt64(dst.count) else {
            throw StoreError("\(what()): compressed blob is damaged (declares \(size >= ZSTD_CONTENTSIZE_ERROR ? "no valid size" : "\(size) bytes"), expected \(dst.count))")
        }
        let n = src.withUnsafeBytes { s in ZSTD_decompressDCtx(dctx, dst.baseAddress, dst.count, s.baseAddress, s.count) }
        if ZSTD_isError(n) != 0 {
            throw StoreError("\(what()): compressed blob is damaged (\(String(cString: ZSTD_getErrorName(n))))")
        }
        guard n == dst.count else { throw StoreError("\(what()): compressed blob is damaged (short by \(dst.count - n) bytes)") }
    }

    /// Throws unless the frame declares exactly `bytes` bytes — checked before any allocation, so
    /// a damaged count can never ask for an absurd buffer.
    private func checkDeclaredSize(_ src: [UInt8], bytes: Int, what: () -> String) throws {
        let size = src.withUnsafeBytes { ZSTD_getFrameContentSize($0.baseAddress, $0.count) }
        guard bytes >= 0, size == UInt64(bytes) else {
            throw StoreError("\(what()): compressed blob is damaged (its size does not match the catalog)")
        }
    }

    func decompress<T>(_ src: [UInt8], count: Int, as type: T.Type, what: @autoclosure () -> String) throws -> [T] where T: FixedWidthInteger {
        let (bytes, overflow) = count.multipliedReportingOverflow(by: MemoryLayout<T>.stride)
        if overflow { throw StoreError("\(what()): damaged element count \(count)") }
        try checkDeclaredSize(src, bytes: bytes, what: what)
        var out = [T](repeating: 0, count: count)
        try out.withUnsafeMutableBytes { try decompress(src, into: $0, what: what()) }
        return out
    }

    func decompressBytes(_ src: [UInt8], count: Int, what: @autoclosure () -> String) throws -> [UInt8] {
        try checkDeclaredSize(src, bytes: count, what: what)
        // Uninitialized, not zero-filled: `decompress` either fills every byte or throws.
        return try [UInt8](unsafeUninitializedCapacity: count) { buffer, initialized in
            try decompress(src, into: UnsafeMutableRawBufferPointer(buffer), what: what())
            initialized = count
        }
    }
}
