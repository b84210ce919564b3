import Foundation
import GRDB

/// What `verify` found. A clean store has no problems.
public struct VerifyReport: Sendable {
    public var runs = 0
    public var chunks = 0
    public var pairs = 0
    public var tensors = 0
    public var sequences = 0
    /// One line per problem, each naming the run, chunk, tensor or sequence at fault.
    public var problems: [String] = []
    public var isClean: Bool { problems.isEmpty }
}

extension Store {
    /// Checks everything: SQLite's integrity check and foreign keys, every chunk (checksum, full
    /// decode, ordering, contiguity), pair counts against the catalog, every tensor and sequence.
    public func verify() throws -> VerifyReport {
        var report = VerifyReport()
        verifying = true   // verify reports manifest mismatches itself, with the rest of what it finds
        defer { verifying = false }
        do {
            try dbQueue.read { db in
                // SQLite reports one line per problem, some of them multi-line: say how many, and the first.
                let integrity = try String.fetchAll(db, sql: "PRAGMA integrity_check").filter { $0 != "ok" }
                if let first = integrity.first {
                    let line = first.split(whereSeparator: \.isNewline).first.map(String.init) ?? ""
                    report.problems.append("\(path): SQLite integrity check failed (\(integrity.count) problem\(integrity.count == 1 ? "" : "s"), first: \(line.prefix(200)))")
                }
                let tables = Set(try String.fetchAll(db, sql: "SELECT name FROM sqlite_schema WHERE type IN ('table', 'index') AND name NOT LIKE 'sqlite_%'"))
                let missing = StoreSchema.objectNames.subtracting(tables)
                if !missing.isEmpty { report.problems.append("\(path): damaged store (missing \(missing.sorted().joined(separator: ", ")))") }
                if try Row.fetchOne(db, sql: "PRAGMA foreign_key_check") != nil {
                    report.problems.append("\(path): rows refer to runs that do not exist")
                }
                guard report.problems.isEmpty else { return }
                let runs = try Int64.fetchAll(db, sql: "SELECT id FROM runs ORDER BY id")
                report.runs = runs.count
                for gone in try Store.manifestRuns(db).subtracting(runs).sorted() {
                    report.problems.append("\(path): run \(gone) is in the store's manifest but has no runs row (changed outside qkdb)")
                }
                let orphans = try Int64.fetchAll(db, sql: "SELECT DISTINCT run_id FROM pair_chunks WHERE run_id NOT IN (SELECT run_id FROM pair_maps)")
                for r in orphans { report.problems.append("\(path): run \(r) has pair chunks but no pair map catalog entry") }
                for run in runs {
                    runCache[run] = nil
                    let cached: CachedRun
                    do { cached = try cachedRun(run, db) } catch { report.problems.append("\(error)"); continue }
                    if let map = cached.pairMap { verifyPairMap(run: run, map: map, shape: cached.shape, db, &report) }
                    verifyBlobs(run: run, db, &report)
                    verifyCatalogBounds(run: run, shape: cached.shape, db, &report)
                    do { report.problems += try manifestProblems(run: run, db) } catch { report.problems.append("\(Store.wrap(error, path: path, verifying: true))") }
                }
            }
        } catch {
            report.problems.append("\(Store.wrap(error, path: path, verifying: true))")
        }
        return report
    }

    /// Rows whose values are bounded by their run's shape: a feature index a dictionary does not
    /// have would crash or mislead every query that trusts it.
    private func verifyCatalogBounds(run: Int64, shape: PairMapShape, _ db: Database, _ report: inout VerifyReport) {
        let checks: [(String, String)] = [
            ("SELECT count(*) FROM features WHERE run_id = ?1 AND ((side = 'query' AND idx >= ?2) OR (side = 'key' AND idx >= ?3))",
             "feature statistics for indices beyond the dictionaries (d_query \(shape.dQuery), d_key \(shape.dKey))"),
            ("SELECT count(*) FROM examples WHERE run_id = ?1 AND (feature < 0 OR rank < 0 OR position < 0 OR (side = 'query' AND feature >= ?2) OR (side = 'key' AND feature >= ?3))",
             "examples of features beyond the dictionaries or at negative positions"),
        ]
        for (sql, what) in checks {
            do {
                let n = try Int.fetchOne(db, sql: sql, arguments: [run, shape.dQuery, shape.dKey]) ?? 0
                if n > 0 { report.problems.append("\(path): run \(run) has \(n) \(what)") }
            } catch {
                report.problems.append("\(Store.wrap(error, path: path, verifying: true))")
            }
        }
    }

    /// Besides decoding every chunk, checks that the two orderings hold the same pairs with the
    /// same ranking key: an order-independent sum of a hash of (head, query, key, bf16 ranking key)
    /// over each ordering must agree.
    private func verifyPairMap(run: Int64, map: PairMapInfo, shape: PairMapShape, _ db: Database, _ report: inout VerifyReport) {
        var fingerprints: [UInt64] = []
        let rankName = map.keyColumns.first?.rawValue ?? PairColumn.value.rawValue
        for side in FeatureSide.allCases {
            var fingerprint: UInt64 = 0
            var total = 0, expectedSeq = 0
            var previous: (head: Int, lead: Int, trail: Int)? = nil
            do {
                let cursor = try Row.fetchCursor(db, sql: "SELECT \(Store.chunkColumns) FROM pair_chunks WHERE run_id = ? AND ordering = ? ORDER BY seq",
                                                 arguments: [run, side.ordering])
                while let row = try cursor.next() {
                    let record = try chunkRecord(row, run: run)
                    report.chunks += 1
                    do {
                        guard record.seq == expectedSeq else {
                            throw StoreError("\(path): run \(run) \(side.rawValue)-major chunks jump from \(expectedSeq - 1) to \(record.seq)")
                        }
                        expectedSeq += 1
                        let reader = try PairChunkReader(record: record, run: run, codec: map.codec(side), zstd: zstd, shape: shape)
                        let trails = try reader.trails(extent: shape.extent(side.other))
                        let floats = try reader.floats(names: map.storedColumns(side))
                        if let rank = floats.column(rankName) {
                            for r in 0..<reader.rowLeads.count {
                                let lead = UInt64(reader.rowLeads[r])
                                for n in Int(reader.offsets[r])..<Int(reader.offsets[r + 1]) {
                                    let trail = UInt64(trails[n])
                                    let (q, k) = side == .query ? (lead, trail) : (trail, lead)
                                    let keyBits = UInt64(ValueCodec.bf16.encode16(rank[rank.startIndex + n]))
                                    var c = Checksum()
                                    c.add(UInt64(record.head) << 48 ^ q << 24 ^ k); c.add(keyBits)
                                    fingerprint &+= UInt64(bitPattern: c.value)
                                }
                            }
                        }
                        let first = (record.head, Int(reader.rowLeads[0]), Int(trails[0]))
                        if let p = previous, !(p < first) {
                            throw StoreError("\(path): \(record.name(run: run)) is out of order after the chunk before it")
                        }
                        let lastRow = reader.rowLeads.count - 1
                        previous = (record.head, Int(reader.rowLeads[lastRow]), Int(trails[record.nnz - 1]))
                        total += record.nnz
                    } catch {
                        report.problems.append("\(error)")
                    }
                }
            } catch {
                report.problems.append("\(Store.wrap(error, path: path))")
            }
            if total != map.nnz && report.problems.isEmpty {
                report.problems.append("\(path): run \(run) \(side.rawValue)-major chunks hold \(total) pairs, the catalog says \(map.nnz)")
            }
            if side == .query { report.pairs += total }
            fingerprints.append(fingerprint)
        }
        if report.problems.isEmpty && fingerprints.count == 2 && fingerprints[0] != fingerprints[1] {
            report.problems.append("\(path): run \(run): the query-major and key-major orderings do not hold the same pairs")
        }
    }

    private func verifyBlobs(run: Int64, _ db: Database, _ report: inout VerifyReport) {
        do {
            for row in try Row.fetchAll(db, sql: "SELECT name, shape, checksum, data FROM tensors WHERE run_id = ?", arguments: [run]) {
                report.tensors += 1
                do { _ = try decodeTensor(row, run: run, name: (try? row.required("name", path) as String) ?? "?") } catch { report.problems.append("\(error)") }
            }
            for row in try Row.fetchAll(db, sql: "SELECT id, n_tokens, checksum, tokens FROM sequences WHERE run_id = ?", arguments: [run]) {
                report.sequences += 1
                do { _ = try decodeSequence(row, run: run, id: (try? row.required("id", path) as Int) ?? -1) } catch { report.problems.append("\(error)") }
            }
        } catch {
            report.problems.append("\(Store.wrap(error, path: path))")
        }
    }
}
