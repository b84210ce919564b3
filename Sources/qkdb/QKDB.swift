import ArgumentParser

/// `qkdb`: decompose a transformer layer's QK circuit into sparse feature pairs, store and query them.
/// Commands are thin: parse, call a library, print. Each command lives in its own file.
struct QKDB: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "qkdb",
        abstract: "Explain why attention heads attend where they do: sparse query × key feature pairs.",
        subcommands: QKDB.allCommands
    )
}
