import Foundation
import QKTrain

/// The sparsity frontier a run chose its L0 on, drawn as an inline SVG for the report's summary
/// page: held-out KL against k (log scale), the mean pattern's KL as a dashed line, and the chosen
/// L0 as a vertical marker.
///
///     let svg = FrontierPlot.svg(frontier)      // "<svg …>…</svg>"
enum FrontierPlot {
    static let width = 480.0, height = 260.0
    static let margin = (left: 56.0, right: 16.0, top: 16.0, bottom: 40.0)

    /// The report section for a run's metrics JSON object: the step-1 frontier and step 2's μ
    /// curve, each when the run chose it from the data ("" when neither).
    static func section(_ metrics: [String: Any]) -> String {
        stepOne(metrics) + penaltyCurve((metrics["step2"] as? [String: Any])?["penalty_search"])
    }

    static func penaltyCurve(_ raw: Any?) -> String {
        guard let raw, let data = try? JSONSerialization.data(withJSONObject: raw),
              let c = try? JSONDecoder().decode(MaskPenaltyCurve.self, from: data) else { return "" }
        var body = "<h2>Sparsity: the mask penalty μ step 2 chose</h2><p>\(HTML.escape(c.rule)): μ \(String(format: "%.3g", c.chosen)).</p>"
        body += "<table id=\"penalty-curve\"><tr><th>μ</th><th>pairs kept</th><th>pruned KL (training sequences)</th><th>× unmasked</th></tr>"
        for p in c.points {
            body += "<tr><th>\(String(format: "%.3g", p.penalty))</th><td class=\"num\">\(p.kept)</td>"
                + "<td class=\"num\">\(String(format: "%.4f", p.klPruned))</td><td class=\"num\">\(String(format: "%.2f", p.ratio))</td></tr>"
        }
        return body + "</table>"
    }

    static func stepOne(_ metrics: [String: Any]) -> String {
        guard let raw = metrics["sparsity_sweep"],
              let data = try? JSONSerialization.data(withJSONObject: raw),
              let f = try? JSONDecoder().decode(SparsityFrontier.self, from: data) else { return "" }
        var body = "<h2>Sparsity: the frontier step 1 chose its L0 on</h2>"
        body += svg(f)
        body += "<p>Chosen L0 \(String(format: "%.1f", f.chosenL0)): \(HTML.escape(f.rule)).</p>"
        body += "<table id=\"frontier\"><tr><th>k</th><th>held-out KL</th><th>live query</th><th>live key</th></tr>"
        for (i, p) in f.points.enumerated() {
            let mark = i == f.chosenPoint ? " class=\"chosen\"" : ""
            body += "<tr\(mark)><th>\(p.k)</th><td class=\"num\">\(String(format: "%.4f", p.klFull))</td>"
                + "<td class=\"num\">\(p.liveQuery)</td><td class=\"num\">\(p.liveKey)</td></tr>"
        }
        return body + "</table>"
    }

    static func svg(_ f: SparsityFrontier) -> String {
        guard let first = f.points.first, let last = f.points.last else { return "" }
        let x0 = log2(Double(first.k)), x1 = max(x0 + 1, log2(Double(last.k)))
        let ys = f.points.map(\.klFull) + [f.baselineMeanPatternKL]
        let yMax = (ys.max() ?? 1) * 1.05, yMin = 0.0
        let plotW = width - margin.left - margin.right, plotH = height - margin.top - margin.bottom
        func px(_ k: Double) -> Double { margin.left + (log2(k) - x0) / (x1 - x0) * plotW }
        func py(_ kl: Double) -> Double { margin.top + (1 - (kl - yMin) / max(yMax - yMin, 1e-12)) * plotH }
        func n(_ v: Double) -> String { String(format: "%.1f", v) }

        var s = "<svg id=\"frontier-plot\" xmlns=\"http://www.w3.org/2000/svg\" width=\"\(Int(width))\" height=\"\(Int(height))\" "
            + "viewBox=\"0 0 \(Int(width)) \(Int(height))\" font-family=\"sans-serif\" font-size=\"11\">"
        // Axes, with a tick per grid point and three on KL.
        let bottom = margin.top + plotH
        s += "<line x1=\"\(n(margin.left))\" y1=\"\(n(bottom))\" x2=\"\(n(margin.left + plotW))\" y2=\"\(n(bottom))\" stroke=\"#333\"/>"
        s += "<line x1=\"\(n(margin.left))\" y1=\"\(n(margin.top))\" x2=\"\(n(margin.left))\" y2=\"\(n(bottom))\" stroke=\"#333\"/>"
        for p in f.points {
            s += "<text x=\"\(n(px(Double(p.k))))\" y=\"\(n(bottom + 14))\" text-anchor=\"middle\">\(p.k)</text>"
        }
        for i in 0...2 {
            let v = yMax * Double(i) / 2
            s += "<text x=\"\(n(margin.left - 6))\" y=\"\(n(py(v) + 4))\" text-anchor=\"end\">\(String(format: "%.2f", v))</text>"
        }
        s += "<text x=\"\(n(margin.left + plotW / 2))\" y=\"\(n(height - 6))\" text-anchor=\"middle\">k = L0 per token (log scale)</text>"
        s += "<text x=\"12\" y=\"\(n(margin.top + plotH / 2))\" text-anchor=\"middle\" transform=\"rotate(-90 12 \(n(margin.top + plotH / 2)))\">held-out KL</text>"
        // The mean pattern's KL, the scale the rule measures gains against.
        let base = py(f.baselineMeanPatternKL)
        s += "<line x1=\"\(n(margin.left))\" y1=\"\(n(base))\" x2=\"\(n(margin.left + plotW))\" y2=\"\(n(base))\" stroke=\"#999\" stroke-dasharray=\"4 3\"/>"
        s += "<text x=\"\(n(margin.left + plotW))\" y=\"\(n(base - 4))\" text-anchor=\"end\" fill=\"#666\">mean pattern</text>"
        // The frontier.
        let path = f.points.map { "\(n(px(Double($0.k)))),\(n(py($0.klFull)))" }.joined(separator: " ")
        s += "<polyline points=\"\(path)\" fill=\"none\" stroke=\"#1f77b4\" stroke-width=\"2\"/>"
        for p in f.points {
            s += "<circle cx=\"\(n(px(Double(p.k))))\" cy=\"\(n(py(p.klFull)))\" r=\"3.5\" fill=\"#1f77b4\"><title>k \(p.k): KL \(String(format: "%.4f", p.klFull))</title></circle>"
        }
        // The chosen L0.
        let cx = px(min(max(f.chosenL0, Double(first.k)), Double(last.k)))
        s += "<line id=\"frontier-chosen\" x1=\"\(n(cx))\" y1=\"\(n(margin.top))\" x2=\"\(n(cx))\" y2=\"\(n(bottom))\" stroke=\"#d62728\" stroke-width=\"1.5\"/>"
        s += "<text x=\"\(n(cx + 4))\" y=\"\(n(margin.top + 12))\" fill=\"#d62728\">chosen L0 \(String(format: "%.1f", f.chosenL0))</text>"
        return s + "</svg>"
    }
}
