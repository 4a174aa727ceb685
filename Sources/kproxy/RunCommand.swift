import Agent
import ArgumentParser
import Controller
import Logging
import NetworkTypes
import ObjectSources
import ServiceTable

struct RunCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "run",
        abstract: "Run the node agent: keep this node's rules in step with the cluster's services.",
        discussion: """
            Watches Services, EndpointSlices and this node's Node, builds the service table for this \
            node and programs it with the chosen data plane. Flags use kube-proxy's names. On SIGTERM \
            the agent stops and leaves the rules in place, so traffic keeps flowing while it restarts.

            Example (no cluster needed: the manifest folder is the source):
              kproxy run --proxy-mode nftables --manifests deploy/examples --hostname-override node-a
            """)

    @Option(name: [.customLong("proxy-mode"), .customLong("mode")], help: "Data plane: \(ProxyMode.allValueStrings.joined(separator: ", ")).")
    var mode: ProxyMode = .nftables

    @Option(help: "A folder of YAML/JSON manifests to use instead of a Kubernetes API server.")
    var manifests: String

    @OptionGroup var node: NodeNameOptions

    @Option(name: .customLong("cluster-cidr"), help: "Pod CIDRs (comma-separated); traffic to services from outside them is masqueraded.")
    var clusterCIDR: String?

    @Flag(name: .customLong("masquerade-all"), help: "Masquerade all traffic sent to services.")
    var masqueradeAll = false

    @Option(name: .customLong("nodeport-addresses"), help: "CIDRs (comma-separated) of the local addresses NodePorts answer on; default all.")
    var nodePortAddresses: String?

    @Option(name: .customLong("sync-period"), help: "How often to fully resync the rules (e.g. 30s, 1m).")
    var syncPeriod = GoDuration(argument: "30s")!

    @Option(name: .customLong("min-sync-period"), help: "The least time between two syncs; changes within it are coalesced.")
    var minSyncPeriod = GoDuration(argument: "1s")!

    @Option(name: .customLong("logging-format"), help: "Log format: text or json.")
    var loggingFormat: String = "text"

    @Option(name: [.customShort("v"), .customLong("v")], help: "Log verbosity: 0 info, 2 debug, 4 trace.")
    var verbosity: Int = 0

    func validate() throws {
        guard LogFormat(rawValue: loggingFormat) != nil else {
            throw ValidationError("--logging-format \(loggingFormat): expected text or json")
        }
        _ = try settings()
    }

    func settings() throws -> ProxySettings {
        func cidrs(_ flag: String, _ value: String?) throws -> [CIDR] {
            try (value ?? "").split(separator: ",").map { raw in
                let s = raw.trimmingCharacters(in: .whitespaces)
                guard let c = CIDR(s), s.contains("/") else {
                    throw ValidationError("--\(flag): \"\(s)\" is not a CIDR")
                }
                return c
            }
        }
        return ProxySettings(clusterCIDRs: try cidrs("cluster-cidr", clusterCIDR), masqueradeAll: masqueradeAll,
                             nodePortAddresses: try cidrs("nodeport-addresses", nodePortAddresses))
    }

    func run() async throws {
        LogFormat(rawValue: loggingFormat)!.bootstrap(level: verbosity >= 4 ? .trace : verbosity >= 2 ? .debug : .info)
        let logger = Logger(label: "kproxy.agent")
        let nodeName = node.resolved
        let plane = try mode.makeDataPlane(settings: try settings(), logger: logger)
        let source = ManifestSource(directory: manifests, logger: Logger(label: "kproxy.source.manifests"))
        let agent = NodeAgent(
            configuration: .init(nodeName: nodeName,
                                 schedule: SyncSchedule(minInterval: minSyncPeriod.duration,
                                                        fullSyncInterval: syncPeriod.duration)),
            dataPlanes: [plane], source: { source.watch() }, logger: logger)
        logger.info("starting", metadata: ["mode": "\(mode.rawValue)", "node": "\(nodeName)", "manifests": "\(manifests)"])
        try await agent.run()
    }
}

extension String {
    func trimmingCharacters(in _: Whitespace) -> String {
        var s = Substring(self)
        while s.first?.isWhitespace == true { s.removeFirst() }
        while s.last?.isWhitespace == true { s.removeLast() }
        return String(s)
    }
    enum Whitespace { case whitespaces }
}
