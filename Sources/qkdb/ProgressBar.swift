import Foundation

/// A one-line progress bar on stderr: `label [#####.....] 42% 1.2k/3k tok  9.8k tok/s  ETA 0:31  extra`.
/// Redraws in place on a terminal (at most ~10 times a second); when stderr is not a terminal
/// (CI logs, pipes) it prints a plain line every 10% instead, so logs stay readable.
final class ProgressBar {
    let label: String
    let total: Double
    let unit: String
    private let start = Date()
    private var lastDraw = Date.distantPast
    private var lastDecile = -1
    private let tty = isatty(2) != 0
    private(set) var finished = false

    init(_ label: String, total: Double, unit: String = "") {
        self.label = label; self.total = max(total, 1); self.unit = unit
    }

    /// Reports progress `done` (same units as `total`) with an optional free-text suffix.
    func update(_ done: Double, _ extra: String = "") {
        let frac = min(max(done / total, 0), 1)
        let elapsed = Date().timeIntervalSince(start)
        let rate = elapsed > 0 ? done / elapsed : 0
        let eta = rate > 0 ? (total - done) / rate : 0
        let line = "\(label) \(bar(frac)) \(String(format: "%3.0f%%", frac * 100)) \(human(done))/\(human(total))\(unit.isEmpty ? "" : " " + unit)  \(human(rate))\(unit.isEmpty ? "" : " " + unit)/s  ETA \(clock(eta))  \(extra)"
        if tty {
            guard Date().timeIntervalSince(lastDraw) > 0.1 || frac >= 1 else { return }
            lastDraw = Date()
            FileHandle.standardError.write(Data(("\r\u{1B}[K" + line).utf8))
        } else {
            let decile = Int(frac * 10)
            guard decile > lastDecile else { return }
            lastDecile = decile
            FileHandle.standardError.write(Data((line + "\n").utf8))
        }
    }

    /// Ends the bar's line, printing the elapsed time.
    func finish(_ extra: String = "") {
        guard !finished else { return }
        finished = true
        let msg = "\(label) done in \(clock(Date().timeIntervalSince(start)))  \(extra)\n"
        FileHandle.standardError.write(Data(((tty ? "\r\u{1B}[K" : "") + msg).utf8))
    }

    private func bar(_ f: Double) -> String {
        let w = 24, n = Int(f * Double(w))
        return "[" + String(repeating: "#", count: n) + String(repeating: ".", count: w - n) + "]"
    }
}

/// 1234 → "1.2k", 2_500_000 → "2.5M".
func human(_ x: Double) -> String {
    switch abs(x) {
    case 1e9...: return String(format: "%.1fG", x / 1e9)
    case 1e6...: return String(format: "%.1fM", x / 1e6)
    case 1e4...: return String(format: "%.0fk", x / 1e3)
    case 1e3...: return String(format: "%.1fk", x / 1e3)
    default: return String(format: "%.0f", x)
    }
}

/// Seconds → "m:ss" or "h:mm:ss".
func clock(_ s: Double) -> String {
    guard s.isFinite, s >= 0 else { return "--:--" }
    let t = Int(s.rounded())
    return t >= 3600 ? String(format: "%d:%02d:%02d", t / 3600, t / 60 % 60, t % 60) : String(format: "%d:%02d", t / 60, t % 60)
}
