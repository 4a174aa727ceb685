#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import Foundation
import NetworkTypes
import TestpodKit

/// A small cluster in network namespaces: a node (where kproxy runs), pods on veths into it, a
/// remote node with its own pods, and clients outside the cluster. Everything it creates carries a
/// unique prefix and is removed by `destroy()` — also from `deinit`, and by the next harness run if
/// the owning process died. It never touches the host's interfaces, routes or ruleset.
///
///     let cluster = try Cluster.create(pods: [PodSpec("a"), PodSpec("b", on: .remote)])
///     defer { cluster.destroy() }
///     try cluster.nft(rules)                                  // or: cluster.runKproxy([...])
///     let r = try cluster.query(from: cluster.client().namespace, "10.96.0.10", 80, count: 20)
///     #expect(r.names == ["a", "b"])
public final class Cluster: @unchecked Sendable {
    public let prefix: String
    public let options: ClusterOptions
    /// The node under test: kproxy runs here.
    public let node: Namespace
    /// The other node, where `.remote` pods live.
    public let remoteNode: Namespace
    /// Where logs and ready files go.
    public let workDir: String
    let testpodPath: String

    // Mutable state, guarded by `lock` (the extensions in ClusterPods/ClusterTraffic use it too).
    let lock = NSRecursiveLock()
    var namespaces: [Namespace] = []
    var clientList: [Client] = []
    var podTable: [String: Pod] = [:]
    var podOrder: [String] = []
    var podProcesses: [String: ChildProcess] = [:]
    var children: [ChildProcess] = []
    var interfaceCounter = 0
    var addressCounters: [Placement: Int] = [.local: AddressPlan.firstAutomaticPodHost,
                                                     .remote: AddressPlan.firstAutomaticPodHost]
    var destroyed = false

    /// Root directory of the per-cluster work folders; each holds an `owner` file with the pid of
    /// the process that created the cluster, so that a later run can clean up after a crash.
    public static let registryRoot = "/tmp/kproxy-harness"

    /// Why network tests cannot run here (`nil` when they can): they need root and `ip`.
    public static var unsupportedReason: String? {
        if getuid() != 0 { return "network tests need root (CAP_NET_ADMIN) to create namespaces" }
        // Root in a restricted container may still lack what `ip netns add` needs.
        if let caps = effectiveCapabilities, caps & (1 << 12) == 0 || caps & (1 << 21) == 0 {
            return "network tests need CAP_NET_ADMIN and CAP_SYS_ADMIN (ip netns), which this root lacks"
        }
        if !Shell.has("ip") { return "network tests need iproute2 (`ip`)" }
        if !Shell.has("sysctl") { return "network tests need procps (`sysctl`)" }
        return nil
    }

    public static var isSupported: Bool { unsupportedReason == nil }

    /// `CapEff` from /proc/self/status (nil where there is no such file).
    static var effectiveCapabilities: UInt64? {
        guard let status = try? String(contentsOfFile: "/proc/self/status", encoding: .utf8),
              let line = status.split(separator: "\n").first(where: { $0.hasPrefix("CapEff:") }) else { return nil }
        return UInt64(line.dropFirst("CapEff:".count).trimmingCharacters(in: .whitespaces), radix: 16)
    }

    // MARK: - Creating and destroying

    /// Builds the node, the remote node, the clients (each on its own link to the node) and the pods,
    /// and starts `testpod serve` in each pod (unless its spec says not to). On failure everything
    /// created so far is removed before the error is thrown.
    public static func create(pods: [PodSpec] = [], clients: [ClientSpec] = ["client"],
                              options: ClusterOptions = ClusterOptions()) throws -> Cluster {
        if let reason = unsupportedReason { throw HarnessError(reason) }
        sweepStale()
        let cluster = try Cluster(options: options)
        do {
            try cluster.build(clients: clients)
            for spec in pods { try cluster.addPod(spec) }
        } catch {
            let diagnostics = cluster.diagnostics()
            cluster.destroy()
            throw HarnessError("\(error)\n--- cluster state before cleanup ---\n\(diagnostics)")
        }
        return cluster
    }

    /// Creates a cluster, runs `body` with it and destroys it, whether `body` returns or throws.
    public static func with<T>(pods: [PodSpec] = [], clients: [ClientSpec] = ["client"],
                               options: ClusterOptions = ClusterOptions(),
                               _ body: (Cluster) async throws -> T) async throws -> T {
        let cluster = try create(pods: pods, clients: clients, options: options)
        defer { cluster.destroy() }
        do {
            return try await body(cluster)
        } catch {
            // The error alone rarely says why traffic went astray: show the node's state with it.
            FileHandle.standardError.write(Data("NetnsHarness: \(error)\n\(cluster.diagnostics())\n".utf8))
            throw error
        }
    }

    private init(options: ClusterOptions) throws {
        self.options = options
        testpodPath = try Binaries.testpod()
        let fm = FileManager.default
        try? fm.createDirectory(atPath: Self.registryRoot, withIntermediateDirectories: true)
        var chosen = options.prefix
        if chosen == nil {
            for _ in 0..<20 {
                let candidate = "kp\(getpid() % 10000)\(String(UInt32.random(in: 0..<4096), radix: 16))-"
                if !fm.fileExists(atPath: "\(Self.registryRoot)/\(candidate)") {
                    chosen = candidate
                    break
                }
            }
        }
        guard let prefix = chosen, Self.isSafePrefix(prefix) else {
            throw HarnessError("namespace prefix \(chosen ?? "") must start with kp and end with - (e.g. kpdemo-)")
        }
        self.prefix = prefix
        workDir = "\(Self.registryRoot)/\(prefix)"
        try fm.createDirectory(atPath: workDir, withIntermediateDirectories: true)
        try "\(getpid())\n".write(toFile: "\(workDir)/owner", atomically: true, encoding: .utf8)
        node = Namespace(prefix + "node")
        remoteNode = Namespace(prefix + "rnode")
    }

    deinit {
        if !options.keepOnDeinit { destroy() }
    }

    private func build(clients: [ClientSpec]) throws {
        try addNamespace(node, router: true)
        for (key, value) in options.nodeSysctls.sorted(by: { $0.key < $1.key }) {
            try exec(in: node, ["sysctl", "-qw", "\(key)=\(value)"])
        }
        try addNamespace(remoteNode, router: true)

        // The node network: node eth0 <-> remote node eth0.
        let (nodeMAC, remoteMAC) = try addVeth(node, "eth0", remoteNode, "eth0", link: 0)
        try ip(node, "addr", "add", "\(AddressPlan.nodeIPv4)/\(AddressPlan.nodeNetworkV4Prefix)", "dev", "eth0")
        try ip(node, "addr", "add", "\(AddressPlan.nodeIPv6)/\(AddressPlan.nodeNetworkV6Prefix)", "dev", "eth0", "nodad")
        try ip(node, "link", "set", "eth0", "up")
        try ip(remoteNode, "addr", "add", "\(AddressPlan.remoteNodeIPv4)/\(AddressPlan.nodeNetworkV4Prefix)", "dev", "eth0")
        try ip(remoteNode, "addr", "add", "\(AddressPlan.remoteNodeIPv6)/\(AddressPlan.nodeNetworkV6Prefix)", "dev", "eth0", "nodad")
        try ip(remoteNode, "link", "set", "eth0", "up")
        try ip(remoteNode, "route", "add", "default", "via", AddressPlan.nodeIPv4)
        try ip(remoteNode, "-6", "route", "add", "default", "via", AddressPlan.nodeIPv6)
        try pinNeighbors(node, "eth0", [AddressPlan.remoteNodeIPv4, AddressPlan.remoteNodeIPv6], remoteMAC)
        try pinNeighbors(remoteNode, "eth0", [AddressPlan.nodeIPv4, AddressPlan.nodeIPv6], nodeMAC)

        // Service CIDRs: a route in the node so that locally originated traffic reaches the output
        // hook (pods, clients and the remote node reach them through their default routes).
        for cidr in options.serviceCIDRs {
            try ip(node, cidr.contains(":") ? "-6" : "-4", "route", "add", cidr, "dev", "lo")
        }
        for route in options.nodeRoutes {
            let words = route.split(separator: " ").map(String.init)
            try ip(node, [words.first?.contains(":") == true ? "-6" : "-4", "route", "add"] + words)
        }
        for spec in clients { try addClient(spec) }
        if options.defaultRouteViaFirstClient, let uplink = clients.isEmpty ? nil : client() {
            try ip(node, "-4", "route", "add", "default", "via", uplink.ipv4, "dev", uplink.hostInterface)
            try ip(node, "-6", "route", "add", "default", "via", uplink.ipv6, "dev", uplink.hostInterface)
        }
    }

    /// Creates a namespace with loopback up, no duplicate address detection (addresses usable at
    /// once) and no reverse-path filtering; a router forwards IPv4 and IPv6.
    func addNamespace(_ ns: Namespace, router: Bool) throws {
        try Shell.run(["ip", "netns", "add", ns.name])
        lock.withLock { namespaces.append(ns) }
        var sysctls = [
            "net.ipv6.conf.all.accept_dad=0", "net.ipv6.conf.default.accept_dad=0",
            "net.ipv4.conf.all.rp_filter=0", "net.ipv4.conf.default.rp_filter=0",
        ]
        if router { sysctls += ["net.ipv4.ip_forward=1", "net.ipv6.conf.all.forwarding=1"] }
        try exec(in: ns, ["sysctl", "-qw"] + sysctls)
        try ip(ns, "link", "set", "lo", "up")
    }

    /// Creates a veth pair between two namespaces with fixed MAC addresses; returns (near, far) MACs.
    func addVeth(_ near: Namespace, _ nearName: String, _ far: Namespace, _ farName: String,
                         link: Int) throws -> (String, String) {
        let nearMAC = AddressPlan.mac(link: link, side: 1)
        let farMAC = AddressPlan.mac(link: link, side: 2)
        try ip(near, "link", "add", nearName, "address", nearMAC, "type", "veth",
               "peer", "name", farName, "address", farMAC, "netns", far.name)
        return (nearMAC, farMAC)
    }

    /// Permanent neighbour entries for the peer's addresses: no ARP/NDP on first contact, whose
    /// resolution otherwise loses the first packet now and then (seen with IPv6 across two routers),
    /// which a test would read as a blackholed connection.
    func pinNeighbors(_ ns: Namespace, _ dev: String, _ addresses: [String], _ mac: String) throws {
        for a in addresses {
            try ip(ns, "neigh", "replace", a, "lladdr", mac, "dev", dev, "nud", "permanent")
        }
    }

    /// Stops every process the harness started, then deletes every namespace it created.
    /// Idempotent; safe to call from `defer`.
    public func destroy() {
        let (procs, spaces): ([ChildProcess], [Namespace]) = lock.withLock {
            if destroyed { return ([], []) }
            destroyed = true
            return (children + podProcesses.values, namespaces)
        }
        if spaces.isEmpty && procs.isEmpty { return }
        for p in procs { p.stop(grace: 2) }
        Self.removeNamespaces(spaces.map(\.name))
        if ProcessInfo.processInfo.environment["KPROXY_HARNESS_KEEP_LOGS"] == "1" {
            try? FileManager.default.removeItem(atPath: "\(workDir)/owner")  // logs stay, nothing to sweep
            FileHandle.standardError.write(Data("NetnsHarness: logs kept in \(workDir)\n".utf8))
        } else {
            try? FileManager.default.removeItem(atPath: workDir)
        }
    }

    /// Removes the namespaces a cluster with this prefix created and the processes inside them
    /// (`kproxy-sandbox down`, crash recovery). Only a safe prefix the harness registered (a folder in
    /// `registryRoot`) is acted on. Returns the namespaces removed.
    @discardableResult
    public static func destroy(prefix: String) -> [String] {
        guard isSafePrefix(prefix),
              FileManager.default.fileExists(atPath: "\(registryRoot)/\(prefix)") else { return [] }
        let names = listNamespaces().filter { isOurs($0, prefix: prefix) }
        removeNamespaces(names)
        try? FileManager.default.removeItem(atPath: "\(registryRoot)/\(prefix)")
        return names
    }

    /// A prefix that cannot match namespaces of other tools or other people's test runs: it starts
    /// with `kp`, ends with `-` and has something between (`kpdemo-`, `kp1234ab-`).
    public static func isSafePrefix(_ prefix: String) -> Bool {
        prefix.count >= 4 && prefix.hasPrefix("kp") && prefix.hasSuffix("-")
            && prefix.allSatisfy { $0.isASCII && ($0.isLetter || $0.isNumber || $0 == "-") }
    }

    /// Whether a namespace is one a cluster with this prefix creates: `PREFIXnode`, `PREFIXrnode`,
    /// `PREFIXc<N>-…`, `PREFIXp<N>-…` (so that `kpt-` cannot take `kpt-123-node` of another tool).
    static func isOurs(_ name: String, prefix: String) -> Bool {
        guard name.hasPrefix(prefix) else { return false }
        let rest = name.dropFirst(prefix.count)
        if rest == "node" || rest == "rnode" { return true }
        // c<N>-<name> (clients), p<N>-<name> (pods)
        guard let kind = rest.first, kind == "c" || kind == "p" else { return false }
        let number = rest.dropFirst().prefix { $0.isASCII && $0.isNumber }
        return !number.isEmpty && rest.dropFirst(1 + number.count).hasPrefix("-")
    }

    /// Kills what still runs inside our namespaces (only processes the harness started live there),
    /// then deletes the namespaces; their veths go with them.
    private static func removeNamespaces(_ names: [String]) {
        for name in names {
            if let r = try? Shell.run(["ip", "netns", "pids", name], check: false) {
                for pid in r.stdout.split(whereSeparator: \.isNewline).compactMap({ Int32($0) }) where pid > 1 {
                    kill(pid, SIGKILL)
                }
            }
        }
        for name in names.reversed() {
            _ = try? Shell.run(["ip", "netns", "del", name], check: false)
        }
    }

    static func listNamespaces() -> [String] {
        guard let r = try? Shell.run(["ip", "netns", "list"], check: false) else { return [] }
        return r.stdout.split(whereSeparator: \.isNewline).compactMap { $0.split(separator: " ").first.map(String.init) }
    }

    /// Removes clusters whose owning process is gone (a test run that crashed before `destroy`).
    public static func sweepStale() {
        let fm = FileManager.default
        guard let entries = try? fm.contentsOfDirectory(atPath: registryRoot) else { return }
        for prefix in entries {
            guard let text = try? String(contentsOfFile: "\(registryRoot)/\(prefix)/owner", encoding: .utf8),
                  let pid = Int32(text.trimmingCharacters(in: .whitespacesAndNewlines)) else { continue }
            if kill(pid, 0) != 0 && errno == ESRCH {
                destroy(prefix: prefix)
            }
        }
    }

    /// Addresses, routes and the nftables ruleset of the node, and the tail of every log: print it
    /// when a test fails.
    public func diagnostics() -> String {
        var out = "cluster \(prefix) (node \(node), remote node \(remoteNode))\n"
        for args in [["ip", "-br", "addr"], ["ip", "-4", "route"], ["ip", "-6", "route"], ["nft", "list", "ruleset"]] {
            if let r = try? exec(in: node, args, check: false, timeout: 20) {
                out += "--- node: \(args.joined(separator: " ")) (exit \(r.status))\n\(r.stdout)\(r.stderr)"
            }
        }
        let procs = lock.withLock { children + podProcesses.values }
        for p in procs {
            let text = p.output.split(separator: "\n", omittingEmptySubsequences: false).suffix(20).joined(separator: "\n")
            out += "--- \(p.label) (\(p.isRunning ? "running" : "exited")): \(p.logPath)\n\(text)\n"
        }
        return out
    }

    /// A name cut to what reads well in `ip netns list` (the number before it keeps it unique).
    static func sanitize(_ name: String) -> String {
        let allowed = Set("abcdefghijklmnopqrstuvwxyz0123456789-")
        return String(name.lowercased().map { allowed.contains($0) ? $0 : "-" }.prefix(16))
    }
}
