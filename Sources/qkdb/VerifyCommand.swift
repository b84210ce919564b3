import ArgumentParser
import Foundation
import QKStore

/// `qkdb verify` — SQLite's integrity check, every chunk checksum and decode, and the pair counts
/// against the catalog. Clean: a summary on stdout, exit 0. Otherwise: the first problem (and how
/// many more) on stderr, non-zero exit.
struct VerifyCommand: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "verify", abstract: "Check a store's integrity: SQLite and every chunk checksum.")

    @OptionGroup var location: StoreLocation

    func run() throws {
        let store = try Store(path: location.store)
        let r = try store.verify()
        guard r.isClean else {
            let more = r.problems.count > 1 ? " (and \(r.problems.count - 1) more problems)" : ""
            throw StoreError("verify failed: \(r.problems[0])\(more)")
        }
        printOut("ok: \(location.store): \(r.runs) runs, \(r.pairs) pairs in \(r.chunks) chunks, \(r.tensors) tensors, \(r.sequences) sequences; all checksums match\n")
    }
}
