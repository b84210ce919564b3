import Foundation

/// Small helpers for writing the static report: escaping, colour scales and SVG pieces.
enum HTML {
    static func escape(_ s: String) -> String {
        var out = ""
        out.reserveCapacity(s.count)
        for ch in s {
            switch ch {
            case "&": out += "&amp;"
            case "<": out += "&lt;"
            case ">": out += "&gt;"
            case "\"": out += "&quot;"
            case "'": out += "&#39;"
            default: out.append(ch)
            }
        }
        return out
    }

    /// A page with the shared stylesheet; `root` is the relative path back to the site root.
    static func page(title: String, root: String, body: String) -> String {
        """
        <!DOCTYPE html>
        <html lang="en"><head><meta charset="utf-8"><title>\(escape(title))</title>
        <link rel="stylesheet" href="\(root)style.css"></head>
        <body><nav><a href="\(root)index.html">summary</a> · <a href="\(root)heatmaps.html">patterns</a> · <a href="\(root)heads.html">heads</a> · <a href="\(root)sinks.html">sinks</a> · <a href="\(root)features.html">features</a></nav>
        <main>\(body)</main></body></html>

        """
    }

    /// White → blue for a value in [0, 1].
    static func blue(_ v: Float) -> String {
        let x = max(0, min(1, v))
        let r = Int(255 - 225 * x), g = Int(255 - 175 * x)
        return "rgb(\(r),\(g),255)"
    }


    /// An n×n heatmap of a `[n, n]` row-major block as SVG. Values are quantised to 16 shades and
    /// each shade is one `<path>` of unit squares (a rect per cell made pages of megabytes);
    /// cells under 0.005 are left white.
    static func heatmap(_ values: UnsafeBufferPointer<Float>, rowStride: Int, n: Int, cell: Int, label: String) -> String {
        let size = n * cell
        let levels = 16
        var paths = [String](repeating: "", count: levels)
        for r in 0..<n {
            for c in 0..<n {
                let v = values[r * rowStride + c]
                guard v >= 0.005 else { continue }
                let level = min(levels - 1, Int(v.squareRoot() * Float(levels)))
                paths[level] += "M\(c) \(r)h1v1h-1z"
            }
        }
        var svg = "<svg class=\"heatmap\" width=\"\(size)\" height=\"\(size)\" viewBox=\"0 0 \(n) \(n)\" shape-rendering=\"crispEdges\" role=\"img\" aria-label=\"\(escape(label))\"><rect width=\"\(n)\" height=\"\(n)\" fill=\"#fff\"/>"
        for (level, d) in paths.enumerated() where !d.isEmpty {
            svg += "<path fill=\"\(blue((Float(level) + 0.5) / Float(levels)))\" d=\"\(d)\"/>"
        }
        return svg + "</svg>"
    }

    /// A bar-chart histogram as SVG.
    static func histogram(_ h: ActivationHistogram, width: Int = 320, height: Int = 80) -> String {
        let top = max(1, h.counts.max() ?? 1)
        let bw = Double(width) / Double(max(1, h.bins))
        var svg = "<svg class=\"hist\" width=\"\(width)\" height=\"\(height + 14)\" role=\"img\" aria-label=\"activation histogram\">"
        for (b, n) in h.counts.enumerated() where n > 0 {
            let bh = max(1, Double(height) * Double(n) / Double(top))
            svg += String(format: "<rect x=\"%.1f\" y=\"%.1f\" width=\"%.1f\" height=\"%.1f\" fill=\"#e67e22\"><title>%.3f–%.3f: %d</title></rect>",
                          Double(b) * bw, Double(height) - bh, max(1, bw - 1), bh,
                          h.maxValue * Float(b) / Float(h.bins), h.maxValue * Float(b + 1) / Float(h.bins), n)
        }
        svg += "<text x=\"0\" y=\"\(height + 12)\" font-size=\"10\">0</text>"
        svg += String(format: "<text x=\"%d\" y=\"%d\" font-size=\"10\" text-anchor=\"end\">%.3f</text>", width, height + 12, h.maxValue)
        return svg + "</svg>"
    }

    static let stylesheet = """
    body { font-family: system-ui, sans-serif; margin: 0; color: #222; }
    nav { background: #2c3e50; padding: 8px 16px; } nav a { color: #fff; text-decoration: none; margin-right: 4px; }
    main { padding: 12px 20px; }
    .label { color: #666; font-size: 12px; }
    table { border-collapse: collapse; font-size: 13px; margin: 8px 0; }
    th, td { border: 1px solid #ddd; padding: 3px 8px; text-align: left; } td.num { text-align: right; font-family: monospace; }
    th { background: #f3f3f3; }
    .panels { display: flex; flex-wrap: wrap; gap: 10px; }
    .panel { border: 1px solid #ddd; padding: 6px; } .panel h4 { margin: 0 0 4px 0; font-size: 13px; }
    .triple { display: flex; gap: 4px; } .triple figure { margin: 0; } figcaption { font-size: 11px; color: #555; }
    .example { font-family: monospace; white-space: pre-wrap; margin: 3px 0; font-size: 13px; }
    .tok { border-radius: 2px; } .fire { outline: 2px solid #c0392b; }
    .a0 { background: transparent; } .a1 { background: rgba(255,140,0,.1); } .a2 { background: rgba(255,140,0,.2); }
    .a3 { background: rgba(255,140,0,.3); } .a4 { background: rgba(255,140,0,.4); } .a5 { background: rgba(255,140,0,.5); }
    .a6 { background: rgba(255,140,0,.6); } .a7 { background: rgba(255,140,0,.7); } .a8 { background: rgba(255,140,0,.8); }
    .a9 { background: rgba(255,140,0,.9); } .a10 { background: rgba(255,140,0,1); }
    svg.heatmap { border: 1px solid #ccc; }
    .act { display: inline-block; width: 70px; color: #666; }
    #search { font-size: 14px; padding: 4px; } .neg { color: #c0392b; } .pos { color: #1e8449; }
    """
}
