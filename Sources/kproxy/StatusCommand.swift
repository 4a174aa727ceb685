import ArgumentParser
import Foundation

/// `kproxy status`: how a running agent is doing.
struct StatusCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "status",
        abstract: "Show a running agent's state: mode, node, health, last sync, changes and failures.",
        discussion: """
            Reads the agent's /debug/status on its metrics address (kube-proxy's --metrics-bind-address, \
            127.0.0.1:10249 by default). Exits with status 1 when the agent reports itself unhealthy.

            Example:
              kproxy status
              kubectl -n kube-system exec ds/kproxy -- kproxy status -o json
            """)

    @Option(help: "The agent's metrics address.")
    var agent: String = AgentClient.defaultURL

    @Option(name: [.short, .long], help: "Output: text (default) or json.")
    var output: String = "text"

    struct Document: Decodable {
        struct Sync: Decodable {
            var lastSuccess: String?
            var oldestPendingChange: String?
            var lastError: String?
            var syncs: Int
            var failures: Int
            var serviceChanges: Int
            var endpointChanges: Int
            var tableVersion: UInt64
            var servicePorts: Int
        }
        var mode: String
        var node: String
        var healthy: Bool
        var sync: Sync
    }

    func run() async throws {
        let (code, body) = try await AgentClient(agent).get("/debug/status")
        guard code == 200 else { throw ValidationError("\(agent)/debug/status answered \(code): \(body)") }
        if output == "json" {
            print(body)
        } else {
            let doc = try JSONDecoder().decode(Document.self, from: Data(body.utf8))
            let rows: [(String, String)] = [
                ("Mode", doc.mode),
                ("Node", doc.node),
                ("Healthy", doc.healthy ? "yes" : "NO (a change has waited longer than 2 × sync period)"),
                ("Service ports", "\(doc.sync.servicePorts) (table version \(doc.sync.tableVersion))"),
                ("Last successful sync", doc.sync.lastSuccess ?? "never"),
                ("Pending since", doc.sync.oldestPendingChange ?? "nothing pending"),
                ("Syncs", "\(doc.sync.syncs) (\(doc.sync.failures) failed)"),
                ("Changes seen", "\(doc.sync.serviceChanges) service, \(doc.sync.endpointChanges) endpoint slice"),
                ("Last error", doc.sync.lastError ?? "none"),
            ]
            let width = rows.map(\.0.count).max() ?? 0
            for (k, v) in rows { print(k + ":" + String(repeating: " ", count: width - k.count + 2) + v) }
            if !doc.healthy { throw ExitCode(1) }
        }
    }
}
