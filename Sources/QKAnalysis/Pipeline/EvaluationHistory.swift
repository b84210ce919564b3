import Foundation

/// Every `qkdb eval` of a run is kept: the run's metrics hold `evaluations`, one record per
/// evaluation in the order they ran (time, sequences, tokens, patches, figures), and `eval`, the
/// one every summary shows — the record with the most held-out tokens (at a run's fixed context,
/// the most sequences), the later of equals. So a quick `eval --sequences 8` adds a record and
/// leaves the 64-sequence figures on display instead of replacing them.
public enum EvaluationHistory {
    public struct Added: Sendable {
        /// 1-based position of the new record, and of the record shown.
        public var number: Int
        public var shown: Int
        public var count: Int
        public var sequences: Int?
        public var shownSequences: Int?
    }

    /// The `{"eval": shown, "evaluations": all}` metrics patch that adds `record` to `metrics`.
    /// A run evaluated before history existed has only `eval`: it becomes the first record.
    public static func adding(_ record: [String: Any], to metrics: String) throws -> (patch: String, added: Added) {
        let m = (try? JSONSerialization.jsonObject(with: Data(metrics.utf8))) as? [String: Any] ?? [:]
        var all = m["evaluations"] as? [[String: Any]] ?? ((m["eval"] as? [String: Any]).map { [$0] } ?? [])
        all.append(record)
        let shown = shownIndex(all)
        let patch = try jsonText(["eval": all[shown], "evaluations": all])
        return (patch, Added(number: all.count, shown: shown + 1, count: all.count,
                             sequences: record["sequences"] as? Int, shownSequences: all[shown]["sequences"] as? Int))
    }

    /// The record to show: most tokens evaluated, the latest among equals.
    public static func shownIndex(_ records: [[String: Any]]) -> Int {
        var best = 0
        for (i, r) in records.enumerated() where tokens(r) >= tokens(records[best]) { best = i }
        return best
    }

    static func tokens(_ r: [String: Any]) -> Int { (r["tokens"] as? NSNumber)?.intValue ?? 0 }
}
