import ArgumentParser
import NetnsHarness

struct DownCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "down",
        abstract: "Remove a sandbox's namespaces and the processes in them.",
        discussion: "Example: kproxy-sandbox down --prefix kpdemo-")

    @Option(help: "The sandbox's namespace prefix.")
    var prefix: String

    func validate() throws {
        guard prefix.count >= 3 else { throw ValidationError("--prefix is too short to be a sandbox's") }
    }

    func run() throws {
        let removed = Cluster.destroy(prefix: prefix)
        print(removed.isEmpty ? "nothing to remove for \(prefix)" : "removed \(removed.joined(separator: " "))")
    }
}
