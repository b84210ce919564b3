import QKTensor
import ArgumentParser
import Foundation
import QKStore

/// `--format` of the store's query commands.
enum StoreOutputFormat: String, ExpressibleByArgument, CaseIterable {
    case table, csv, json
}

/// A query result as rows of typed cells, printable as an aligned table, CSV or JSON.
/// Every query command builds one of these, so the three formats always agree.
struct ResultTable {
    enum Cell {
        case int(Int)
        case float(Float)
        case double(Double)
        case text(String)
        /// Already-valid JSON (a run's config or metrics): embedded as is in JSON, as text elsewhere.
        case json(String)
        case null

        var plain: String {
            switch self {
            case .int(let v): return String(v)
            case .float(let v): return NumberText.float(v)
            case .double(let v): return NumberText.double(v)
            case .text(let s), .json(let s): return s
            case .null: return ""
            }
        }

        /// As a table shows it: numbers to four significant figures (CSV and JSON keep every digit).
        var tableText: String {
            switch self {
            case .float(let v): return NumberText.short(Double(v))
            case .double(let v): return NumberText.short(v)
            default: return plain.replacingOccurrences(of: "\n", with: " ")
            }
        }

        var jsonText: String {
            switch self {
            case .int(let v): return String(v)
            case .float(let v): return v.isFinite ? NumberText.float(v) : "null"
            case .double(let v): return v.isFinite ? NumberText.double(v) : "null"
            case .text(let s): return ResultTable.jsonString(s)
            case .json(let s): return s
            case .null: return "null"
            }
        }
    }

    var headers: [String]
    var rows: [[Cell]] = []

    static func jsonString(_ s: String) -> String { QKTensor.jsonString(s) }

    func render(_ format: StoreOutputFormat) -> String {
        switch format {
        case .csv:
            return ([headers] + rows.map { $0.map(\.plain) }).map { $0.map(CSVWriter.escape).joined(separator: ",") }.joined(separator: "\n") + "\n"
        case .json:
            return jsonArray() + "\n"
        case .table:
            let cells = [headers] + rows.map { $0.map(\.tableText) }
            let widths = headers.indices.map { c in cells.map { $0[c].count }.max() ?? 0 }
            return cells.enumerated().map { (r, line) in
                line.enumerated().map { (c, s) in
                    let pad = String(repeating: " ", count: widths[c] - s.count)
                    let numeric = r > 0 && { if case .text = rows[r - 1][c] { return false }; return true }()
                    return numeric ? pad + s : s + pad
                }.joined(separator: "  ").trailingSpacesRemoved
            }.joined(separator: "\n") + "\n"
        }
    }

    /// For tables a person reads: in each group, the `columns` cells of a row whose `key` cells
    /// equal the row above are left blank (a sink's own figures are shown once, not on each of
    /// its query features' rows). CSV and JSON keep every cell.
    func blankingRepeats(_ groups: [(key: [String], columns: [String])]) -> ResultTable {
        var out = self
        for g in groups {
            let keys = g.key.compactMap { headers.firstIndex(of: $0) }, cols = g.columns.compactMap { headers.firstIndex(of: $0) }
            for r in rows.indices.dropFirst() where keys.allSatisfy({ rows[r][$0].plain == rows[r - 1][$0].plain }) {
                for c in cols { out.rows[r][c] = .text("") }
            }
        }
        return out
    }

    func jsonArray() -> String {
        "[" + rows.map { jsonObject($0) }.joined(separator: ",\n ") + "]"
    }

    func jsonObject(_ row: [Cell]) -> String {
        "{" + zip(headers, row).map { "\(ResultTable.jsonString($0)): \($1.jsonText)" }.joined(separator: ", ") + "}"
    }
}

/// `--model` of the commands that run a stored run's model.
struct RunModelArgument: ParsableArguments {
    @Option(help: "The run's model folder (or .gguf), when it is not where the run recorded it; must be the same model (checked by fingerprint).")
    var model: String?
}

/// The options every store command shares.
struct StoreLocation: ParsableArguments {
    @Option(name: .long, help: "The .qkdb store file.")
    var store: String
}

extension ResultTable.Cell {
    init(_ x: Float?) { self = x.map { .float($0) } ?? .null }
    init(_ x: Double?) { self = x.map { .double($0) } ?? .null }
    init(_ x: Int?) { self = x.map { .int($0) } ?? .null }
    init(_ s: String?) { self = s.map { .text($0) } ?? .null }
}

/// Pair rows as a table: the stable snake_case columns, the run's extra columns, then both
/// features' labels.
func pairTable(_ rows: [PairRow], extraColumns: [String], labels: FeatureLabels) -> ResultTable {
    var t = ResultTable(headers: ["head", "query_feature", "key_feature"] + PairColumn.allCases.map(\.rawValue) + extraColumns + ["query_label", "key_label"])
    t.rows = rows.map { p in
        [.int(p.head), .int(p.queryFeature), .int(p.keyFeature)] + PairColumn.allCases.map { .init(p.column($0)) } + p.extra.map { .float($0) }
            + [.init(labels[.query, p.queryFeature]), .init(labels[.key, p.keyFeature])]
    }
    return t
}



/// Writes to stdout in one piece (large results are built first, so a failure prints nothing partial).
func printOut(_ text: String) {
    FileHandle.standardOutput.write(Data(text.utf8))
}

extension String {
    /// Right-aligned in `width` characters.
    func leftPadded(_ width: Int) -> String { String(repeating: " ", count: max(0, width - count)) + self }

    /// Without trailing spaces (leading ones stay: a blank first cell keeps the columns aligned).
    var trailingSpacesRemoved: String {
        var s = Substring(self)
        while s.last == " " { s.removeLast() }
        return String(s)
    }
}
