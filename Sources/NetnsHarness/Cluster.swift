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

    private let lock = NSRecursiveLock()
    private var namespaces: [Namespace] = []
    private var clientList: [Client] = []
    private var podTable: [String: Pod] = [:]
    private var podOrder: [String] = []
    private var podProcesses: [String: ChildProcess] = [:]
    private var children: [ChildProcess] = []
    private var interfaceCounter = 0
    private var addressCounters: [Placement: Int] = [.local: AddressPlan.firstAutomaticPodHost,
                                                     .remote: AddressPlan.firstAutomaticPodHost]
    private var destroyed = false

    /// Root directory of the per-cluster work folders; each holds an `owner` file with the pid of
    /// the process that created the cluster, so that a later run can clean up after a crash.
    public static let registryRoot = "/tmp/kproxy-harness"

    /// Why network tests cannot run here (`nil` when they can): they need root and `ip`.
    public static var unsupportedReason: String? {
        if getuid() != 0 { return "network tests need root (CAP_NET_ADMIN) to create namespaces" }
        if !Shell.has("ip") { return "network tests need iproute2 (`ip`)" }
        if !Shell.has("sysctl") { return "network tests need procps (`sysctl`)" }
        return nil
    }

    public static var isSupported: Bool { unsupportedReason == nil }

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
        return try await body(cluster)
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
        guard let prefix = chosen else { throw HarnessError("cannot choose a namespace prefix") }
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
    private func addNamespace(_ ns: Namespace, router: Bool) throws {
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

    private func addClient(_ spec: ClientSpec) throws {
        let k = lock.withLock { clientList.count }
        let ns = Namespace(prefix + "c-" + Self.sanitize(spec.name))
        try addNamespace(ns, router: false)
        let link = "ec\(k)"
        let (nodeMAC, clientMAC) = try addVeth(node, link, ns, "eth0", link: 0x100 + k)
        let v4 = spec.ipv4 ?? AddressPlan.clientIPv4(k)
        let v6 = AddressPlan.canonical(spec.ipv6 ?? AddressPlan.clientIPv6(k))
        let gw4 = AddressPlan.nodeSideIPv4(k), gw6 = AddressPlan.nodeSideIPv6(k)
        try ip(node, "link", "set", link, "up")
        try ip(ns, "link", "set", "eth0", "up")
        for (f, address, gateway, length) in [("-4", v4, gw4, "/32"), ("-6", v6, gw6, "/128")] {
            try ip(node, [f, "addr", "add", gateway + length, "dev", link] + (f == "-6" ? ["nodad"] : []))
            try ip(ns, [f, "addr", "add", address + length, "dev", "eth0"] + (f == "-6" ? ["nodad"] : []))
            try ip(ns, f, "route", "add", gateway, "dev", "eth0")
            try ip(ns, f, "route", "add", "default", "via", gateway, "dev", "eth0")
            try ip(node, f, "route", "add", address + length, "dev", link)
            try pinNeighbors(node, link, [address], clientMAC)
            try pinNeighbors(ns, "eth0", [gateway], nodeMAC)
        }
        let client = Client(name: spec.name, namespace: ns, ipv4: v4, ipv6: v6,
                            nodeSideIPv4: gw4, nodeSideIPv6: gw6, hostInterface: link)
        lock.withLock { clientList.append(client) }
    }

    /// Creates a veth pair between two namespaces with fixed MAC addresses; returns (near, far) MACs.
    private func addVeth(_ near: Namespace, _ nearName: String, _ far: Namespace, _ farName: String,
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
    private func pinNeighbors(_ ns: Namespace, _ dev: String, _ addresses: [String], _ mac: String) throws {
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
        try? FileManager.default.removeItem(atPath: workDir)
    }

    /// Removes every namespace whose name starts with `prefix` and the processes inside them
    /// (`kproxy-sandbox down`, crash recovery). Returns the namespaces removed.
    @discardableResult
    public static func destroy(prefix: String) -> [String] {
        precondition(!prefix.isEmpty)
        let names = listNamespaces().filter { $0.hasPrefix(prefix) }
        removeNamespaces(names)
        try? FileManager.default.removeItem(atPath: "\(registryRoot)/\(prefix)")
        return names
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

    // MARK: - Pods and clients

    /// Clients, in creation order.
    public var clients: [Client] { lock.withLock { clientList } }

    /// The client called `name` (the first client when not given).
    public func client(_ name: String? = nil) -> Client {
        lock.withLock {
            guard let c = name.map({ n in clientList.first { $0.name == n } }) ?? clientList.first else {
                preconditionFailure("no client \(name ?? "") in this cluster")
            }
            return c
        }
    }

    /// Pods, in creation order.
    public var pods: [Pod] { lock.withLock { podOrder.compactMap { podTable[$0] } } }

    /// The pod called `name`.
    public func pod(_ name: String) -> Pod {
        lock.withLock {
            guard let p = podTable[name] else { preconditionFailure("no pod \(name) in this cluster") }
            return p
        }
    }

    /// Adds a pod on its node: a namespace, a veth into the node (or remote node) with the pod's
    /// /32 and /128 routes, and, unless told not to, `testpod serve` answering on its ports.
    @discardableResult
    public func addPod(_ spec: PodSpec) throws -> Pod {
        let (ifname, ipv4, ipv6): (String, String?, String?) = try lock.withLock {
            guard podTable[spec.name] == nil else { throw HarnessError("pod \(spec.name) exists already") }
            interfaceCounter += 1
            // Automatic addresses: both families share the host number (10.244.1.12 / fd00:10:244:1::c).
            let used = Set(podTable.values.flatMap(\.ips))
            let p = spec.placement
            var n = addressCounters[p]!
            if spec.ipv4 == nil || spec.ipv6 == nil {
                while used.contains(AddressPlan.podAddress(p, .ipv4, n)) || used.contains(AddressPlan.podAddress(p, .ipv6, n)) {
                    n += 1
                }
                addressCounters[p] = n + 1
            }
            let v4 = spec.families.contains(.ipv4) ? (spec.ipv4 ?? AddressPlan.podAddress(p, .ipv4, n)) : nil
            let v6 = spec.families.contains(.ipv6)
                ? (spec.ipv6.map(AddressPlan.canonical) ?? AddressPlan.podAddress(p, .ipv6, n)) : nil
            return ("vp\(interfaceCounter)", v4, v6)
        }
        let ns = Namespace(prefix + "p-" + Self.sanitize(spec.name))
        let host = spec.placement == .local ? node : remoteNode
        try addNamespace(ns, router: false)
        let linkID = 0x200 + Int(ifname.dropFirst(2))!
        let (hostMAC, podMAC) = try addVeth(host, ifname, ns, "eth0", link: linkID)
        try ip(host, "addr", "add", AddressPlan.podGateway(spec.placement, .ipv4) + "/32", "dev", ifname)
        try ip(host, "addr", "add", AddressPlan.podGateway(spec.placement, .ipv6) + "/128", "dev", ifname, "nodad")
        try ip(host, "link", "set", ifname, "up")
        try ip(ns, "link", "set", "eth0", "up")
        for (family, address) in [(IPFamily.ipv4, ipv4), (.ipv6, ipv6)] {
            guard let address else { continue }
            let f = family == .ipv4 ? "-4" : "-6"
            let gateway = AddressPlan.podGateway(spec.placement, family)
            let hostLength = family == .ipv4 ? "/32" : "/128"
            try ip(ns, [f, "addr", "add", address + hostLength, "dev", "eth0"] + (family == .ipv6 ? ["nodad"] : []))
            try ip(ns, f, "route", "add", gateway, "dev", "eth0")
            try ip(ns, f, "route", "add", "default", "via", gateway, "dev", "eth0")
            try ip(host, f, "route", "add", address + hostLength, "dev", ifname)
            try pinNeighbors(host, ifname, [address], podMAC)
            try pinNeighbors(ns, "eth0", [gateway], hostMAC)
            if spec.placement == .remote {
                let via = family == .ipv4 ? AddressPlan.remoteNodeIPv4 : AddressPlan.remoteNodeIPv6
                try ip(node, f, "route", "add", address + hostLength, "via", via)
            }
        }
        let pod = Pod(name: spec.name, namespace: ns, placement: spec.placement, ipv4: ipv4, ipv6: ipv6,
                      tcp: spec.tcp, udp: spec.udp, sctp: spec.sctp, hostInterface: ifname)
        lock.withLock {
            podTable[spec.name] = pod
            podOrder.append(spec.name)
        }
        if spec.start { try startPod(name: spec.name) }
        return pod
    }

    /// Stops a pod's server and deletes its namespace (its veth and the routes to it go too).
    public func removePod(name: String) throws {
        let pod = self.pod(name)
        stopPod(name: name)
        if pod.placement == .remote {
            for address in pod.ips {
                let f = address.contains(":") ? "-6" : "-4"
                _ = try? ip(node, check: false, [f, "route", "del", address + (f == "-6" ? "/128" : "/32")])
            }
        }
        try Shell.run(["ip", "netns", "del", pod.namespace.name])
        lock.withLock {
            podTable[name] = nil
            podOrder.removeAll { $0 == name }
            namespaces.removeAll { $0 == pod.namespace }
        }
    }

    /// Starts `testpod serve` in the pod (no-op if it runs) and waits until every port listens.
    public func startPod(name: String) throws {
        let pod = self.pod(name)
        if let running = lock.withLock({ podProcesses[name] }), running.isRunning { return }
        let ready = "\(workDir)/\(Self.sanitize(name)).ready"
        try? FileManager.default.removeItem(atPath: ready)
        var args = [testpodPath, "serve", "--name", name, "--ready-file", ready]
        if !pod.tcp.isEmpty { args += ["--tcp", pod.tcp.map(String.init).joined(separator: ",")] }
        if !pod.udp.isEmpty { args += ["--udp", pod.udp.map(String.init).joined(separator: ",")] }
        if !pod.sctp.isEmpty { args += ["--sctp", pod.sctp.map(String.init).joined(separator: ",")] }
        let child = try ChildProcess(label: "pod \(name)", arguments: ["ip", "netns", "exec", pod.namespace.name] + args,
                                     logPath: "\(workDir)/pod-\(Self.sanitize(name)).log")
        lock.withLock { podProcesses[name] = child }
        let deadline = Date().addingTimeInterval(10)
        while !FileManager.default.fileExists(atPath: ready) {
            if !child.isRunning {
                throw HarnessError("pod \(name) exited at start (status \(child.stop())):\n\(child.output)")
            }
            if Date() > deadline {
                throw HarnessError("pod \(name) not listening after 10 s:\n\(child.output)")
            }
            usleep(5_000)
        }
    }

    /// Stops the pod's server: its address stays, so connections are refused (a pod that is down).
    public func stopPod(name: String) {
        let child = lock.withLock { podProcesses.removeValue(forKey: name) }
        child?.stop(grace: 2)
    }

    // MARK: - Running things

    /// Runs a command inside a namespace and waits for it (throws on a non-zero exit when `check`).
    @discardableResult
    public func exec(in ns: Namespace, _ arguments: [String], input: String? = nil, check: Bool = true,
                     timeout: Double = 60) throws -> CommandResult {
        try Shell.run(["ip", "netns", "exec", ns.name] + arguments, input: input, check: check, timeout: timeout)
    }

    /// `ip -n NS ARGS…`
    @discardableResult
    func ip(_ ns: Namespace, _ arguments: String...) throws -> CommandResult {
        try Shell.run(["ip", "-n", ns.name] + arguments)
    }

    @discardableResult
    func ip(_ ns: Namespace, check: Bool = true, _ arguments: [String]) throws -> CommandResult {
        try Shell.run(["ip", "-n", ns.name] + arguments, check: check)
    }

    /// Starts a long-running command in a namespace (e.g. `kproxy run …` in the node). The harness
    /// stops it in `destroy()`; stop it earlier with `child.stop()` (SIGTERM, then SIGKILL).
    public func spawn(in ns: Namespace, _ arguments: [String], label: String? = nil,
                      environment: [String: String]? = nil) throws -> ChildProcess {
        let name = label ?? URL(fileURLWithPath: arguments.first ?? "process").lastPathComponent
        let n = lock.withLock { children.count }
        let child = try ChildProcess(label: name, arguments: ["ip", "netns", "exec", ns.name] + arguments,
                                     logPath: "\(workDir)/\(n)-\(Self.sanitize(name)).log", environment: environment)
        lock.withLock { children.append(child) }
        return child
    }

    /// Starts the built `kproxy` in the node namespace with `arguments` (e.g.
    /// `["run", "--mode", "nftables", "--manifests", dir, "--hostname-override", cluster.options.nodeName]`).
    public func runKproxy(_ arguments: [String], environment: [String: String]? = nil) throws -> ChildProcess {
        try spawn(in: node, [try Binaries.kproxy()] + arguments, label: "kproxy", environment: environment)
    }

    /// Loads an nftables script (`nft -f -`) in a namespace (the node unless told).
    public func nft(_ script: String, in ns: Namespace? = nil) throws {
        try exec(in: ns ?? node, ["nft", "-f", "-"], input: script)
    }

    /// Deletes the conntrack entries of a namespace (the node unless told), so that one run's
    /// connections do not steer the next. Needs conntrack-tools.
    public func flushConntrack(in ns: Namespace? = nil) throws {
        let r = try exec(in: ns ?? node, ["conntrack", "-F"], check: false)
        // conntrack exits 1 when the table was already empty on some versions.
        if !r.succeeded && !r.stderr.contains("0 flow entries") && !r.stdout.contains("0 flow entries") {
            throw HarnessError("conntrack flush failed:\n\(r)")
        }
    }

    // MARK: - Traffic

    /// Makes `count` connections (or datagrams) from `ns` to `address:port` with `testpod query`
    /// and returns who answered and how the rest failed.
    public func query(from ns: Namespace, _ address: String, _ port: UInt16, _ proto: L4Protocol = .tcp,
                      count: Int = 10, timeoutMs: Int = 1000, parallel: Int = 1,
                      source: String? = nil) throws -> QueryReport {
        var args = [testpodPath, "query", "--count", "\(count)", "--timeout-ms", "\(timeoutMs)",
                    "--parallel", "\(parallel)"]
        args += Self.protocolFlags(proto)
        if let source { args += ["--source", source] }
        args.append(Self.target(address, port))
        let budget = Double(count * timeoutMs) / 1000 / Double(max(1, parallel)) + 15
        let r = try exec(in: ns, args, timeout: budget)
        do {
            return try JSONDecoder().decode(QueryReport.self, from: Data(r.stdout.utf8))
        } catch {
            throw HarnessError("cannot read testpod's report (\(error)):\n\(r)")
        }
    }

    /// Starts `testpod stream` from `ns`: `connections` long-lived connections exchanging a line every
    /// `intervalMs` for `seconds`. Collect the report with `handle.finish()`.
    public func startStream(from ns: Namespace, _ address: String, _ port: UInt16, _ proto: L4Protocol = .tcp,
                            connections: Int = 4, seconds: Double = 5, intervalMs: Int = 100,
                            timeoutMs: Int = 1000) throws -> StreamHandle {
        var args = [testpodPath, "stream", "--connections", "\(connections)", "--seconds", "\(seconds)",
                    "--interval-ms", "\(intervalMs)", "--timeout-ms", "\(timeoutMs)"]
        args += Self.protocolFlags(proto)
        args.append(Self.target(address, port))
        let child = try spawn(in: ns, args, label: "stream")
        return StreamHandle(child: child, seconds: seconds, timeoutMs: timeoutMs)
    }

    static func protocolFlags(_ proto: L4Protocol) -> [String] {
        switch proto {
        case .tcp: return []
        case .udp: return ["--udp"]
        case .sctp: return ["--sctp"]
        }
    }

    static func target(_ address: String, _ port: UInt16) -> String {
        address.contains(":") ? "[\(address)]:\(port)" : "\(address):\(port)"
    }

    // MARK: - Diagnostics

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

    static func sanitize(_ name: String) -> String {
        let allowed = Set("abcdefghijklmnopqrstuvwxyz0123456789-")
        return String(name.lowercased().map { allowed.contains($0) ? $0 : "-" }.prefix(40))
    }
}

/// A running `testpod stream`.
public struct StreamHandle: Sendable {
    public let child: ChildProcess
    let seconds: Double
    let timeoutMs: Int

    /// Waits until every connection has been tried (`testpod stream` printed `opened N of K`);
    /// returns N, the connections that answered, or throws after `timeout` seconds.
    @discardableResult
    public func waitUntilOpened(timeout: Double = 10) throws -> Int {
        let deadline = Date().addingTimeInterval(timeout)
        while true {
            let output = child.output
            if let line = output.split(separator: "\n").first(where: { $0.hasPrefix("opened ") }),
               let n = Int(line.split(separator: " ")[1]) {
                return n
            }
            if !child.isRunning || Date() > deadline {
                throw HarnessError("testpod stream did not open its connections:\n\(output)")
            }
            usleep(10_000)
        }
    }

    /// Waits for the stream to end by itself and returns its report.
    public func finish() throws -> StreamReport {
        let budget = seconds + Double(timeoutMs) / 1000 * 3 + 30
        if child.wait(timeout: budget) == nil { child.stop() }
        return try report()
    }

    /// Ends the stream now (SIGTERM) and returns its report.
    public func stop() throws -> StreamReport {
        child.stop(grace: Double(timeoutMs) / 1000 * 2 + 5)
        return try report()
    }

    private func report() throws -> StreamReport {
        let output = child.output
        guard let line = output.split(separator: "\n").last(where: { $0.hasPrefix("{") }) else {
            throw HarnessError("testpod stream printed no report:\n\(output)")
        }
        do {
            return try JSONDecoder().decode(StreamReport.self, from: Data(line.utf8))
        } catch {
            throw HarnessError("cannot read testpod stream's report (\(error)):\n\(output)")
        }
    }
}
