import ArgumentParser
import Foundation
import QKStore
import QKAnalysis

/// `qkdb merge` — runs from shard stores (e.g. one per layer, written on many machines) into one.
struct MergeCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "merge", abstract: "Copy the runs of shard stores into one store (verified, as stored, idempotent).",
        discussion: """
        Each shard is verified first; its runs are copied with their chunks, tensors and sequences byte for byte, \
        renumbered after the target's runs. A run already in the target (a shard merged twice) is skipped. Shards \
        of another model than the target's (by weights fingerprint) are refused unless --allow-other-models.
        """)

    @Option(help: "The store to merge into (created if missing).") var into: String
    @Argument(help: "Shard stores.") var shards: [String]
    @Flag(help: "Merge runs of another model than the target's.") var allowOtherModels = false

    func run() throws {
        for a in try StoreMerge.merge(into: into, shards: shards, allowOtherModels: allowOtherModels) {
            let moved = a.runs.map { $0.from == $0.to ? "run \($0.from)" : "run \($0.from) as \($0.to)" }
            var line = "\(a.shard): " + (moved.isEmpty ? "nothing new" : "added " + moved.joined(separator: ", "))
            if !a.skipped.isEmpty { line += "; already there: run " + a.skipped.map(String.init).joined(separator: ", ") }
            printOut(line + "\n")
        }
    }
}
