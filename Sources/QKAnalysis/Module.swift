// \(t) — see docs/DESIGN.md
