import ArgumentParser
import NFTablesDataPlane

/// `kproxy cleanup`: remove what a data plane programmed.
struct CleanupCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "cleanup",
        abstract: "Remove everything kproxy programmed into this node's kernel, and nothing else.",
        discussion: """
            For nftables: deletes the tables `ip kproxy` and `ip6 kproxy`; other tables are left alone.

            Example:
              kproxy cleanup --mode nftables
            """)

    @Option(help: "The proxy mode to clean up after (nftables).")
    var mode: String = "nftables"

    func run() async throws {
        guard mode == "nftables" else {
            throw ValidationError("unknown mode \"\(mode)\" (supported here: nftables)")
        }
        try await NFTablesDataPlane(conntrackCleanup: false).cleanup()
    }
}
