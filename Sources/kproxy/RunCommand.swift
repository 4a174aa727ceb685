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
            node and programs it with the chosen data plane. The objects come from the Kubernetes API \
            server (--kubeconfig, the file's clientConnection.kubeconfig, or in a pod its service \
            account) or from a folder of manifests (--manifests). Settings come from a KubeProxyConfiguration \
            file (--config) and kube-proxy's flags; a flag given on the command line wins over the file. \
            On SIGTERM the agent stops and leaves the rules in place, so traffic keeps flowing while it \
            restarts (kproxy cleanup removes them).

            Serves /healthz and /livez on --healthz-bind-address (0.0.0.0:10256), and /metrics, \
            /proxyMode, /debug/table and /debug/status on --metrics-bind-address (127.0.0.1:10249).

            Examples:
              kproxy run --kubeconfig /etc/kubernetes/kube-proxy.conf --hostname-override node-a
              kproxy run --proxy-mode nftables --manifests deploy/examples --hostname-override node-a
            """)

    @Option(help: "A KubeProxyConfiguration file (kubeproxy.config.k8s.io/v1alpha1).")
    var config: String?

    @Option(name: [.customLong("proxy-mode"), .customLong("mode")],
            help: "Data plane: \(ProxyMode.allValueStrings.joined(separator: ", ")) (default nftables).")
    var mode: ProxyMode?

    @Option(help: "A folder of YAML/JSON manifests to use instead of a Kubernetes API server.")
    var manifests: String?

    @Option(help: "A kubeconfig for the Kubernetes API server (default: the file's clientConnection.kubeconfig, else in-cluster).")
    var kubeconfig: String?

    @OptionGroup var node: NodeNameOptions

    @Option(name: .customLong("cluster-cidr"), help: "Pod CIDRs (comma-separated); traffic to services from outside them is masqueraded.")
    var clusterCIDR: String?

    @Flag(name: .customLong("masquerade-all"), help: "Masquerade all traffic sent to services.")
    var masqueradeAll = false

    @Option(name: .customLong("nodeport-addresses"), help: "CIDRs (comma-separated) of the local addresses NodePorts answer on; default all.")
    var nodePortAddresses: String?

    @Option(name: .customLong("sync-period"), help: "How often to fully resync the rules (default 30s).")
    var syncPeriod: GoDuration?

    @Option(name: .customLong("min-sync-period"), help: "The least time between two syncs; changes within it are coalesced (default 1s).")
    var minSyncPeriod: GoDuration?

    @Option(name: .customLong("healthz-bind-address"), help: "host:port for /healthz and /livez (default 0.0.0.0:10256; empty: off).")
    var healthzBindAddress: String?

    @Option(name: .customLong("metrics-bind-address"), help: "host:port for /metrics and /debug (default 127.0.0.1:10249; empty: off).")
    var metricsBindAddress: String?

    @Option(name: .customLong("logging-format"), help: "Log format: text or json.")
    var loggingFormat: String?

    @Option(name: [.customShort("v"), .customLong("v")], help: "Log verbosity: 0 info, 2 debug, 4 trace.")
    var verbosity: Int?

    /// Flags over the file over kube-proxy's defaults.
    struct Settings {
        var mode: ProxyMode
        var source: SourceChoice
        var nodeName: String
        var proxy: ProxySettings
        var syncPeriod: Duration
        var minSyncPeriod: Duration
        var servers: ServerAddresses
        var logFormat: LogFormat
        var verbosity: Int
        var ignoredFields: [String]
    }

    func settings() throws -> Settings {
        let file = try config.map { path in
            do { return try KubeProxyConfiguration.load(file: path) } catch {
                throw ValidationError("--config: \(error)")
            }
        }
        func cidrs(_ flag: String, _ values: [String]) throws -> [CIDR] {
            try values.map { raw in
                let s = raw.trimmingCharacters(in: .whitespaces)
                guard let c = CIDR(s), s.contains("/") else { throw ValidationError("\(flag): \"\(s)\" is not a CIDR") }
                return c
            }
        }
        func duration(_ flag: String, _ value: GoDuration?, _ fileValue: String?, _ fallback: Duration) throws -> Duration {
            if let value { return value.duration }
            guard let fileValue else { return fallback }
            guard let d = GoDuration.parse(fileValue) else { throw ValidationError("\(flag): \"\(fileValue)\" is not a duration") }
            return d
        }
        let modeName = mode?.rawValue ?? file?.mode.flatMap { $0.isEmpty ? nil : $0 } ?? "nftables"
        guard let mode = ProxyMode(rawValue: modeName) else {
            throw ValidationError("mode \"\(modeName)\" is not supported; choose one of \(ProxyMode.allValueStrings.joined(separator: ", "))")
        }
        let source = try SourceChoice.resolve(manifests: manifests, kubeconfig: kubeconfig, fileKubeconfig: file?.kubeconfig)
        _ = try source.clientConfig()
        let split = { (s: String?) in (s ?? "").split(separator: ",").map(String.init) }
        let proxy = ProxySettings(
            clusterCIDRs: try cidrs("--cluster-cidr", clusterCIDR != nil ? split(clusterCIDR) : split(file?.clusterCIDR)),
            masqueradeAll: masqueradeAll || (file?.masqueradeAll ?? false),
            nodePortAddresses: try cidrs("--nodeport-addresses",
                                         nodePortAddresses != nil ? split(nodePortAddresses) : (file?.nodePortAddresses ?? [])))
        let sync = try duration("syncPeriod", syncPeriod, file?.syncPeriod, .seconds(30))
        let minSync = try duration("minSyncPeriod", minSyncPeriod, file?.minSyncPeriod, .seconds(1))
        guard sync > .zero else { throw ValidationError("--sync-period must be greater than 0") }
        guard minSync >= .zero, minSync <= sync else { throw ValidationError("--min-sync-period must be between 0 and --sync-period") }
        let servers = ServerAddresses(
            healthz: healthzBindAddress ?? file?.healthzBindAddress ?? "0.0.0.0:10256",
            metrics: metricsBindAddress ?? file?.metricsBindAddress ?? "127.0.0.1:10249",
            healthTimeout: Double(sync.components.seconds) * 2)
        for (flag, address) in [("--healthz-bind-address", servers.healthz), ("--metrics-bind-address", servers.metrics)]
        where !address.isEmpty {
            do { _ = try ServerAddresses.split(address) } catch { throw ValidationError("\(flag): \(error)") }
        }
        let formatName = loggingFormat ?? file?.loggingFormat ?? "text"
        guard let format = LogFormat(rawValue: formatName) else {
            throw ValidationError("--logging-format \(formatName): expected text or json")
        }
        var nodeName = node.resolved
        if node.name == nil, let override = file?.hostnameOverride, !override.isEmpty { nodeName = override.lowercased() }
        return Settings(mode: mode, source: source, nodeName: nodeName, proxy: proxy, syncPeriod: sync,
                        minSyncPeriod: minSync, servers: servers, logFormat: format,
                        verbosity: verbosity ?? file?.verbosity ?? 0, ignoredFields: file?.ignoredFields ?? [])
    }

    func validate() throws { _ = try settings() }

    func run() async throws {
        ProcessMemory.limitArenas()
        let s = try settings()
        s.logFormat.bootstrap(level: s.verbosity >= 4 ? .trace : s.verbosity >= 2 ? .debug : .info)
        let logger = Logger(label: "kproxy.agent")
        if !s.ignoredFields.isEmpty {
            logger.notice("configuration fields kproxy does not act on", metadata: ["fields": "\(s.ignoredFields.joined(separator: ", "))"])
        }
        let plane = try s.mode.makeDataPlane(settings: s.proxy, logger: logger)
        let source = try s.source.makeStream(nodeName: s.nodeName, logger: logger)
        let agent = NodeAgent(
            configuration: .init(nodeName: s.nodeName, mode: s.mode.rawValue,
                                 schedule: SyncSchedule(minInterval: s.minSyncPeriod, fullSyncInterval: s.syncPeriod),
                                 servers: s.servers),
            dataPlanes: [plane], source: source, logger: logger)
        logger.info("starting", metadata: [
            "mode": "\(s.mode.rawValue)", "node": "\(s.nodeName)", "source": "\(s.source)",
            "healthz": "\(s.servers.healthz)", "metrics": "\(s.servers.metrics)",
        ])
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
