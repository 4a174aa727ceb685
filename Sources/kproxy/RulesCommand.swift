#if canImport(Glibc)
import Glibc
#endif
import ArgumentParser
import Controller
import NetworkTypes
import NFTablesDataPlane
import ObjectSources
import ServiceTable

/// `kproxy rules`: what a data plane would program for a folder of manifests, without touching the kernel.
struct RulesCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "rules",
        abstract: "Print the ruleset a data plane would program for the manifests in a folder.",
        discussion: """
            Builds the service table for this node from the manifests and renders it in the \
            data plane's own language, without touching the kernel. For nftables, the output is \
            an nft script that loads into an empty ruleset (`nft -f`).

            Example:
              kproxy rules --mode nftables --manifests ./manifests --node node-a --cluster-cidr 10.244.0.0/16
            """)

    @Option(help: "The proxy mode whose rules to print (nftables).")
    var mode: String = "nftables"

    @Option(help: "Folder of Service, EndpointSlice and Node manifests (YAML or JSON).")
    var manifests: String

    @Option(help: "This node's name: decides which endpoints are local.")
    var node: String = NodeHostName.current

    @OptionGroup var proxy: ProxySettingsOptions

    func run() async throws {
        guard mode == "nftables" else {
            throw ValidationError("unknown mode \"\(mode)\" (supported here: nftables)")
        }
        let source = ManifestSource(directory: manifests)
        var builder = TableBuilder(nodeName: node)
        for event in source.rescan() { builder.apply(event) }
        let table = builder.build().table
        print(NFTRuleset.render(table, settings: try proxy.settings()), terminator: "")
    }
}

/// The node-wide settings every mode honours, as kube-proxy's flags name them.
struct ProxySettingsOptions: ParsableArguments {
    @Option(name: .customLong("cluster-cidr"), help: "Pod CIDR; traffic to a cluster IP from outside it is masqueraded (repeatable).")
    var clusterCIDRs: [String] = []

    @Flag(help: "Masquerade all traffic to cluster IPs.")
    var masqueradeAll = false

    @Option(name: .customLong("nodeport-addresses"), help: "Node ports answer only on local addresses in these CIDRs (repeatable; default: all).")
    var nodePortAddresses: [String] = []

    func settings() throws -> ProxySettings {
        func parse(_ list: [String]) throws -> [CIDR] {
            try list.flatMap { $0.split(separator: ",") }.map {
                guard let c = CIDR($0) else { throw ValidationError("invalid CIDR \"\($0)\"") }
                return c
            }
        }
        return ProxySettings(clusterCIDRs: try parse(clusterCIDRs), masqueradeAll: masqueradeAll,
                             nodePortAddresses: try parse(nodePortAddresses))
    }
}

enum NodeHostName {
    /// The host name, as kube-proxy's default node name.
    static var current: String {
        var buf = [CChar](repeating: 0, count: 256)
        guard gethostname(&buf, buf.count) == 0 else { return "localhost" }
        return String(decoding: buf.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }
}
