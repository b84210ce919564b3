import ArgumentParser

/// `qkdb`: decompose a transformer layer's QK circuit into sparse feature pairs, store and query them.
/// Commands are thin: parse, call a library, print. Each command lives in its own file.
struct QKDB: ParsableCommand {
    /// The release this binary is (`qkdb --version`); the store's format version is separate
    /// (`meta.format_version`, `qkdb runs`).
    static let version = "0.6.0"

    static let configuration = CommandConfiguration(
        commandName: "qkdb",
        abstract: "Explain why attention heads attend where they do: sparse query × key feature pairs.",
        version: QKDB.version,
        subcommands: QKDB.allCommands
    )
}
