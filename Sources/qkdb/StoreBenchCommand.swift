import ArgumentParser
import Foundation
import QKStore
#if canImport(Glibc)
import Glibc
#endif

/// `qkdb store-bench` (hidden) — times top-N pair queries inside one process for
/// tools/bench/store, so process start-up does not hide the store's own latency.
/// Warm: one open store, the file in the OS cache. Cold: before each query the file is dropped
/// from the OS page cache (posix_fadvise DONTNEED) and the store is opened afresh; the time
/// includes the open (not the closing of the previous query's store). `open_ms` lists the opens alone. Prints one JSON object of per-query latencies in milliseconds.
struct StoreBenchCommand: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "store-bench", abstract: "Time pair queries in-process (for tools/bench/store).",
                                                    shouldDisplay: false)

    @OptionGroup var location: StoreLocation
    @Option(name: .customLong("run")) var runID: Int64
    @Option(help: "File of queries, one per line: `query|key HEAD FEATURE`.") var queries: String
    @Option var top: Int = 10
    @Flag var cold = false
    @Flag(help: "With --cold: reopen before each query but leave the OS cache alone (isolates the cost of opening).") var keepCache = false

    func run() throws {
        let lines = try String(contentsOfFile: queries, encoding: .utf8).split(separator: "\n")
        let parsed: [PairQuery] = try lines.map { line in
            let f = line.split(separator: " ")
            guard f.count == 3, let side = FeatureSide(rawValue: String(f[0])), let h = Int(f[1]), let i = Int(f[2]) else {
                throw StoreError("\(queries): bad query line '\(line)'")
            }
            return PairQuery(side: side, feature: i, head: h, top: top, order: .importance)
        }
        var times: [Double] = [], openTimes: [Double] = []
        var rows = 0
        var store: Store? = try Store(path: location.store)
        if !cold, let store { for q in parsed.prefix(20) { rows += try store.pairs(run: runID, q).count } }  // settle caches
        for q in parsed {
            if cold {
                store = nil   // the previous query's store is closed before the clock starts: a cold query is a fresh open
                if !keepCache { Self.evict(location.store); Self.evict(location.store + "-wal") }
            }
            let t0 = DispatchTime.now().uptimeNanoseconds
            if store == nil { store = try Store(path: location.store) }
            let t1 = DispatchTime.now().uptimeNanoseconds
            rows += try store?.pairs(run: runID, q).count ?? 0
            let t2 = DispatchTime.now().uptimeNanoseconds
            times.append(Double(t2 - t0) / 1e6)
            openTimes.append(Double(t1 - t0) / 1e6)
        }
        printOut("{\"ms\": [" + times.map { String($0) }.joined(separator: ",") + "], \"open_ms\": [" + openTimes.map { String($0) }.joined(separator: ",")
                 + "], \"rows\": \(rows)}\n")
    }

    static func evict(_ path: String) {
        let fd = open(path, O_RDONLY)
        guard fd >= 0 else { return }
        _ = posix_fadvise(fd, 0, 0, Int32(POSIX_FADV_DONTNEED))
        close(fd)
    }
}
