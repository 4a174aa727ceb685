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
        guard Cluster.isSafePrefix(prefix) else {
            throw ValidationError("--prefix must start with kp and end with - (e.g. kpdemo-), so that it cannot match other namespaces")
        }
    }

    func run() throws {
        let removed = Cluster.destroy(prefix: prefix)
        print(removed.isEmpty ? "nothing to remove for \(prefix)" : "removed \(removed.joined(separator: " "))")
    }
}
